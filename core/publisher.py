"""The execute message on a Redis broker in one LPUSH.

``Celery.send_task`` costs about 0.8 ms per message on Redis: kombu builds a new client
object per publish and routes through its exchange tables. On the submit path that is a
fifth of the request. :class:`RedisPublisher` writes the same message (Celery's protocol 2
headers from ``app.amqp.as_task_v2``, kombu's Redis envelope from the channel's own
``prepare_message``/``encode_body``, to the list kombu would pick for the priority) with
one LPUSH on a persistent client: about 0.3 ms. ``tests/test_publisher.py`` compares its
output with ``send_task``'s, so a Celery or kombu upgrade that changes the format fails
there. Other brokers (RabbitMQ) use ``send_task``.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from bisect import bisect
from typing import Any

import redis
from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as dump_json

_RETRIES = (0.0, 0.2)  # pauses before the second and third tries
PUBLISH_CONNECTIONS = 64  # per API process; a publish waits for a free one
POOL_WAIT_S = 5.0


class RedisPublisher:
    """Publishes Celery task messages straight onto kombu's Redis lists."""

    def __init__(self, celery_app: Celery) -> None:
        self._app = celery_app
        self._connection = celery_app.connection_for_write()
        channel = self._connection.default_channel
        self._channel = channel
        # Our own pool, blocking when all its connections are busy: kombu's channel pool
        # (10 connections) raises "Too many connections" when more API threads than that
        # publish at once, and the submission would be refused with a 503.
        self._client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            celery_app.conf.broker_url, max_connections=PUBLISH_CONNECTIONS,
            timeout=POOL_WAIT_S, socket_timeout=10, socket_connect_timeout=3,
            retry_on_timeout=True, health_check_interval=25))
        self._prefix = channel.global_keyprefix or ""
        self._sep = channel.sep
        self._steps = list(channel.priority_steps)
        self._serializer = celery_app.conf.task_serializer

    def message(self, name: str, task_id: str, args: list[Any], queue: str,
                priority: int, kwargs: dict[str, Any] | None = None
                ) -> tuple[str, bytes | str]:
        """The Redis key and payload ``send_task`` would push for this task."""
        headers, properties, body, _sent = self._app.amqp.as_task_v2(
            task_id, name, args=args, kwargs=kwargs or {}, ignore_result=True)
        content_type, content_encoding, data = serialize(body, serializer=self._serializer)
        properties = dict(properties, delivery_mode=2)
        message = self._channel.prepare_message(data, priority, content_type,
                                                content_encoding, headers, properties)
        message["body"], body_encoding = self._channel.encode_body(
            message["body"], self._channel.body_encoding)
        message["properties"].update(body_encoding=body_encoding,
                                     delivery_tag=str(uuid.uuid4()))
        message["properties"]["delivery_info"].update(exchange="", routing_key=queue)
        return self._key(queue, priority), dump_json(message)

    def publish(self, name: str, task_id: str, args: list[Any], queue: str,
                priority: int, kwargs: dict[str, Any] | None = None) -> None:
        """Push the message; retries twice on a connection error, then raises."""
        key, payload = self.message(name, task_id, args, queue, priority, kwargs)
        for pause in (*_RETRIES, None):
            try:
                self._client.lpush(key, payload)
                return
            except (redis.ConnectionError, redis.TimeoutError):
                if pause is None:
                    raise
                time.sleep(pause)

    def _key(self, queue: str, priority: int) -> str:
        step = self._steps[bisect(self._steps, priority) - 1] if priority else 0
        name = f"{queue}{self._sep}{step}" if step else queue
        return self._prefix + name


# Per app: its publisher, or None when its broker is not Redis (decided once).
_publishers: weakref.WeakKeyDictionary[Celery, RedisPublisher | None] = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()


def redis_publisher(celery_app: Celery) -> RedisPublisher | None:
    """The app's publisher, made once; None when the broker is not Redis."""
    celery_app = getattr(celery_app, "_get_current_object", lambda: celery_app)()  # a proxy
    try:
        return _publishers[celery_app]
    except KeyError:
        pass
    with _lock:
        if celery_app not in _publishers:
            url = celery_app.conf.broker_url or ""
            _publishers[celery_app] = (RedisPublisher(celery_app)
                                       if url.startswith(("redis://", "rediss://")) else None)
        return _publishers[celery_app]
