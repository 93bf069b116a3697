"""kombu's Redis transport with one command client per channel.

kombu's Redis channel builds a new ``redis.Redis`` for every command it sends outside its
consumer connection (each publish, and each ack and unacked-index update: three per
task), and redis-py fills ~170 response callbacks into a case-insensitive dict for each:
about 0.25 ms of CPU apiece, 0.65 ms of a worker's 7 ms per no-op task in a profiled
drain. A client holds no connection of its own (each command takes one from the channel's
pool), so one per channel and pool serves every command; it is rebuilt if kombu replaces
the pool. Everything else is kombu's transport unchanged. Used for ``redis://`` brokers
(:func:`core.celery_config.celery_config`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

TRANSPORT = "core.broker_transport:Transport"


class Channel(kombu_redis.Channel):
    """A kombu Redis channel that reuses its command client."""

    _command_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        cached = self._command_client
        if cached is None or cached.connection_pool is not pool:
            cached = self._command_client = self._create_client()
        yield cached

    def close(self) -> None:
        self._command_client = None
        super().close()


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel
