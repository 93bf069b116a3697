"""Search for the API: the query's embedding from an ``embed`` worker, scoring in
PostgreSQL (:mod:`core.search_sql`).

The API process loads no model, torch or numpy: it sends the query to the ``embed``
queue by task name (:mod:`core.embed_queue`) and waits for the vector on its own
notification channel, at most ``SEARCH_EMBED_TIMEOUT`` seconds (default 5); the request
goes out before the search's first database read (the collections, their sizes), so the
two overlap. No answer in time (no embed worker running, or all busy) is
:class:`EmbeddingUnavailable`, a 503 with ``Retry-After``. Recent queries' vectors are
kept (``SEARCH_QUERY_CACHE`` entries, default 1024, about 5 KB each), so a repeated query
skips the round trip. Keyword searches need no vector at all.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.orm import Session

from core import search_sql
from core.embed_queue import EMBED_QUEUE, EMBED_TASK
from core.notify import CompletionWaiter
from core.search_sql import SearchTuning


class EmbeddingUnavailable(Exception):
    """No embed worker answered in time."""


@dataclass(frozen=True)
class SearchSettings:
    """Search settings, from the environment (``SEARCH_*``)."""

    embed_timeout: float = 5.0
    query_cache: int = 1024
    tuning: SearchTuning = SearchTuning()

    @classmethod
    def from_env(cls) -> SearchSettings:
        env = os.environ.get
        return cls(
            embed_timeout=float(env("SEARCH_EMBED_TIMEOUT") or 5.0),
            query_cache=int(env("SEARCH_QUERY_CACHE") or 1024),
            tuning=SearchTuning.from_env(),
        )


class QueryEmbedder:
    """Query vectors (pgvector literals) from the ``embed`` workers, recent ones kept."""

    def __init__(self, celery, waiter: CompletionWaiter, settings: SearchSettings) -> None:
        self._celery = celery
        self._waiter = waiter
        self._settings = settings
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, query: str) -> str:
        with self.requested(query) as vector:
            return vector()

    @contextmanager
    def requested(self, query: str) -> Iterator[Callable[[], str]]:
        """Ask for ``query``'s vector now; the block gets a function that waits for it
        (at most ``embed_timeout`` from the request), so the caller's database work
        overlaps the embedding. A reply after the block is dropped; a broker that refused
        the request is raised by that function, not here."""
        with self._lock:
            cached = self._cache.get(query)
            if cached is not None:
                self._cache.move_to_end(query)
        if cached is not None:
            yield lambda: cached
            return
        timeout = self._settings.embed_timeout
        with self._waiter.expect() as reply:
            refused: Exception | None = None
            if reply.channel is not None:
                try:
                    self._celery.send_task(EMBED_TASK,
                                           args=[query, reply.channel, reply.token],
                                           queue=EMBED_QUEUE, expires=timeout,
                                           ignore_result=True)
                except BrokerOperationalError as exc:  # raised by vector(), if it is needed:
                    refused = exc  # a 404 or an empty collection still answers as such
            deadline = time.monotonic() + timeout

            def vector() -> str:
                if refused is not None:
                    raise refused
                if reply.channel is None:
                    raise EmbeddingUnavailable("the API's notification listener is not "
                                               "connected")
                found = reply.wait(max(0.0, deadline - time.monotonic()))
                if found is None:
                    raise EmbeddingUnavailable(f"no embed worker answered within {timeout:g} s")
                self._keep(query, found)
                return found

            yield vector

    def _keep(self, query: str, vector: str) -> None:
        with self._lock:
            self._cache[query] = vector
            while len(self._cache) > self._settings.query_cache:
                self._cache.popitem(last=False)


def search(database, embedder: QueryEmbedder, collections: Callable[[Session], list[int]],
           *, query: str, mode: str, k: int, tuning: SearchTuning) -> list[dict[str, Any]]:
    """The ``k`` best segments for ``query`` in ``mode`` of the collections that
    ``collections(session)`` names (their pks; it may raise, e.g. a 404). The query's
    vector is asked for first, so finding the collections and their sizes overlaps the
    embedding, and is waited for only if they hold segments; no database connection is
    held while waiting."""
    if mode == "keyword":
        requested = nullcontext(None)
    else:
        requested = embedder.requested(query)
    with requested as vector_of:
        with database.session() as session:
            pks = collections(session)
            sizes = search_sql.collection_sizes(session, pks) if pks else []
        if not any(c.segments for c in sizes):
            return []
        vector = vector_of() if vector_of is not None else None
    with database.session() as session:
        return search_sql.search(session, pks, query=query, vector=vector, mode=mode, k=k,
                                 tuning=tuning, sizes=sizes)
