"""Semantic search over a collection, on PostgreSQL.

Each API process keeps, per collection, the matrix of its segments' normalized
embeddings (float32, one row per segment, in segment-id order) and the segment ids.
A search reads the collection's two counters (one indexed query it makes anyway to
find the collection), then:

* same ``version`` as the cached matrix: use it;
* a larger ``version`` but the same ``reset_version`` (segments were only added): load
  the rows with ids above the last cached one and append them;
* otherwise (segments were removed or replaced): reload the collection's rows.

The query is embedded with the same model (on CPU, loaded once per process), scored as
``matrix @ query`` (cosine similarity, since both sides have unit norm) and the best
``top_k`` picked with ``np.argpartition``; their text and times come from one query by id.
The cache holds at most ``SEARCH_CACHE_MB`` (least recently used collections go first).
``SEARCH_THREADS`` (default 1) caps the torch and BLAS threads of the API process: one
short query is too small to split over cores, and idle-spinning pool threads only take
CPU from concurrent requests.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core import collections_store as store
from core.db import Database

if TYPE_CHECKING:  # numpy is imported on first use, so an API that never searches skips it
    import numpy as np

Loader = Callable[[int], "tuple[np.ndarray, np.ndarray]"]
"""``load(after_id) -> (ids, matrix)``: the collection's rows with id > after_id."""


@dataclass(frozen=True)
class SearchSettings:
    """Search tuning, from the environment (``SEARCH_*``)."""

    cache_bytes: int = 1024 * 1024 * 1024
    # torch and BLAS threads of the API process (query embedding, scoring).
    threads: int = 1
    # Load the embedding model when the app starts (in a background thread).
    preload: bool = False

    @classmethod
    def from_env(cls) -> SearchSettings:
        return cls(
            cache_bytes=int(float(os.environ.get("SEARCH_CACHE_MB") or 1024) * 1024 * 1024),
            threads=int(os.environ.get("SEARCH_THREADS") or 1),
            preload=(os.environ.get("SEARCH_PRELOAD") or "").strip().lower()
            in {"1", "true", "yes", "on"},
        )


GROWTH = 1.25
MIN_SPARE_ROWS = 4096


@dataclass(frozen=True)
class Snapshot:
    """A collection's vectors as of ``version``: ``ids[i]`` is the segment of row ``i``.

    After an append, ``ids``/``matrix`` are views of the first rows of larger ``spare_*``
    arrays, so the next append writes past them instead of copying the whole matrix. Rows
    a snapshot shows are never written again, so older snapshots stay valid.
    """

    version: int
    reset_version: int
    ids: np.ndarray
    matrix: np.ndarray
    spare_ids: np.ndarray | None = None
    spare_matrix: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def last_id(self) -> int:
        return int(self.ids[-1]) if len(self.ids) else 0

    @property
    def nbytes(self) -> int:
        if self.spare_ids is not None and self.spare_matrix is not None:
            return self.spare_ids.nbytes + self.spare_matrix.nbytes
        return self.ids.nbytes + self.matrix.nbytes

    def extended(self, ids: np.ndarray, matrix: np.ndarray, version: int) -> Snapshot:
        """This snapshot plus rows ``ids``/``matrix`` (larger ids), labelled ``version``."""
        n, m = self.size, len(ids)
        if not m:
            return replace(self, version=version)
        if not n:
            return Snapshot(version, self.reset_version, ids, matrix)
        import numpy as np

        spare_ids, spare_matrix = self.spare_ids, self.spare_matrix
        if spare_ids is None or spare_matrix is None or len(spare_ids) < n + m:
            capacity = max(int((n + m) * GROWTH), n + m + MIN_SPARE_ROWS)
            spare_ids = np.empty(capacity, np.int64)
            spare_matrix = np.empty((capacity, self.matrix.shape[1]), np.float32)
            spare_ids[:n], spare_matrix[:n] = self.ids, self.matrix
        spare_ids[n:n + m], spare_matrix[n:n + m] = ids, matrix
        return Snapshot(version, self.reset_version, spare_ids[:n + m], spare_matrix[:n + m],
                        spare_ids, spare_matrix)


class MatrixCache:
    """Per-collection snapshots, least recently used evicted past ``max_bytes``.

    Thread-safe; one thread loads a given collection while others asking for it wait.
    """

    def __init__(self, max_bytes: int = SearchSettings.cache_bytes) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Snapshot] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.full_loads = 0
        self.partial_loads = 0

    def get(self, key: Hashable, version: int, reset_version: int, load: Loader) -> Snapshot:
        """The snapshot of ``key`` at ``version`` or newer, loading what is missing.

        Counters only grow and every change bumps ``version``, so an entry whose version
        is at least the one asked for is current enough.
        """
        entry = self._fresh(key, version)
        if entry is not None:
            return entry
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            entry = self._fresh(key, version)
            if entry is not None:
                return entry
            with self._lock:
                old = self._entries.get(key)
            if old is not None and old.reset_version == reset_version:
                ids, matrix = load(old.last_id)
                entry = old.extended(ids, matrix, version)
                self.partial_loads += 1
            else:
                ids, matrix = load(0)
                entry = Snapshot(version, reset_version, ids, matrix)
                self.full_loads += 1
            self._put(key, entry)
            return entry

    def _fresh(self, key: Hashable, version: int) -> Snapshot | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.version < version:
                return None
            self._entries.move_to_end(key)
            return entry

    def _put(self, key: Hashable, entry: Snapshot) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > 1 and self.nbytes > self.max_bytes:
                evicted, _ = self._entries.popitem(last=False)
                self._key_locks.pop(evicted, None)

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())


def top_k(matrix: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the ``k`` highest ``matrix @ query`` scores, best first, and scores.

    Ties go to the lower row (the older segment).
    """
    import numpy as np

    n = len(matrix)
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = matrix @ np.asarray(query, dtype=matrix.dtype)
    if k < n:  # rows tied with the k-th score all compete, so ties resolve by row
        threshold = scores[np.argpartition(scores, n - k)[n - k:]].min()
        rows = np.flatnonzero(scores >= threshold)
    else:
        rows = np.arange(n)
    rows = rows[np.lexsort((rows, -scores[rows]))][:k]
    return rows, scores[rows]


@cache
def limit_blas_threads(threads: int) -> None:
    """Cap this process's BLAS (numpy's OpenBLAS) threads, once per value.

    With its default of one thread per core, OpenBLAS splits each ``matrix @ query`` over
    the cores and then keeps its threads spinning, which in a measured run cost twice the
    CPU per search and doubled p95 on 2 cores. A no-op without ``threadpoolctl`` (which
    sentence-transformers' scikit-learn brings); ``OPENBLAS_NUM_THREADS`` does the same.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return
    threadpool_limits(limits=threads, user_api="blas")


@lru_cache(maxsize=1024)
def embed_query(text: str, threads: int = 1) -> np.ndarray:
    """The query's unit vector (CPU model, loaded on first use); repeated queries are cached."""
    from workers.embedding import get_embedder

    vector = get_embedder("cpu", threads=threads).embed([text])[0]
    vector.flags.writeable = False
    return vector


def warm_up(threads: int = 1) -> None:
    """Load the embedding model now rather than on the first search."""
    embed_query("warm up", threads)


def db_loader(db: Database, collection_pk: int) -> Loader:
    def load(after_id: int) -> tuple[np.ndarray, np.ndarray]:
        with db.session() as session:
            return store.load_vectors(session, collection_pk, after_id)

    return load


def search_collection(
    session: Session,
    cache: MatrixCache,
    load: Loader,
    *,
    key: Hashable,
    version: int,
    reset_version: int,
    query: str,
    k: int,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """``[{"media_id", "task_id", "start", "end", "text", "score"}]``, best first.

    ``session`` reads the hits' rows (the one that found the collection: no second
    checkout); ``load`` reads vectors when the cached snapshot of ``key`` is older than
    ``version``.
    """
    snapshot = cache.get(key, version, reset_version, load)
    if not snapshot.size:
        return []
    limit_blas_threads(threads)
    rows, scores = top_k(snapshot.matrix, embed_query(query, threads), k)
    ids = snapshot.ids[rows].tolist()
    found = store.segments_by_id(session, ids)
    hits = []
    for seg_id, score in zip(ids, scores.tolist(), strict=True):
        segment = found.get(seg_id)
        if segment is not None:  # removed since the snapshot was taken
            hits.append({**segment, "score": round(float(score), 6)})
    return hits
