"""Search for the API: the query's embedding from an ``embed`` worker, scoring in
PostgreSQL (:mod:`core.search_sql`).

The API process loads no model, torch or numpy: it sends the query to the ``embed``
queue by task name (:mod:`core.embed_queue`) and waits for the vector on its own
notification channel, at most ``SEARCH_EMBED_TIMEOUT`` seconds (default 5). No answer in
time (no embed worker running, or all busy) is :class:`EmbeddingUnavailable`, a 503 with
``Retry-After``. Recent queries' vectors are kept (``SEARCH_QUERY_CACHE`` entries, default
1024, about 5 KB each), so a repeated query skips the round trip. Keyword searches need no
vector at all.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

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
        with self._lock:
            cached = self._cache.get(query)
            if cached is not None:
                self._cache.move_to_end(query)
                return cached
        vector = self._request(query)
        with self._lock:
            self._cache[query] = vector
            while len(self._cache) > self._settings.query_cache:
                self._cache.popitem(last=False)
        return vector

    def _request(self, query: str) -> str:
        timeout = self._settings.embed_timeout
        with self._waiter.expect() as reply:
            if reply.channel is None:
                raise EmbeddingUnavailable("the API's notification listener is not connected")
            self._celery.send_task(EMBED_TASK, args=[query, reply.channel, reply.token],
                                   queue=EMBED_QUEUE, expires=timeout, ignore_result=True)
            vector = reply.wait(timeout)
        if vector is None:
            raise EmbeddingUnavailable(f"no embed worker answered within {timeout:g} s")
        return vector


def search(database, embed_query, collection_pks: list[int], *, query: str, mode: str,
           k: int, tuning: SearchTuning) -> list[dict[str, Any]]:
    """The ``k`` best segments of the collections for ``query`` in ``mode``. Empty
    collections need no query vector; no database connection is held while waiting for
    one."""
    with database.session() as session:
        sizes = search_sql.collection_sizes(session, collection_pks) if collection_pks else []
    if not any(c.segments for c in sizes):
        return []
    vector = embed_query(query) if mode != "keyword" else None
    with database.session() as session:
        return search_sql.search(session, collection_pks, query=query, vector=vector,
                                 mode=mode, k=k, tuning=tuning, sizes=sizes)
