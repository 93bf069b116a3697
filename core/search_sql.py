"""Search over segments in PostgreSQL: by meaning (pgvector), by words (full-text), or
both fused with reciprocal rank fusion, in one statement. No Flask, no models.

* **semantic**: the segments nearest the query vector by cosine distance. A collection
  with its own HNSW index (:mod:`core.vector_indexes`: those above ``exact_max``
  segments) is searched by walking that index, when at most ``own_index_branches`` of
  them are searched at once. The other collections are scored exactly when they hold at
  most ``exact_max`` segments together (the ``(collection_pk, id)`` index finds their
  rows); otherwise the shared HNSW index is walked with ``hnsw.iterative_scan =
  relaxed_order``, so that a small collection among large ones still gets its ``top_k``
  (the walk goes on past ``ef_search`` candidates until enough rows of the collections
  were found or ``max_scan_tuples`` were seen). The found rows are re-sorted by distance.
  ``score`` = cosine similarity.
* **keyword**: ``websearch_to_tsquery`` (words are ANDed, ``"quoted phrases"``, ``or``,
  ``-word``) under the segment's own configuration ('english' for English media,
  'simple' otherwise), matched against the GIN-indexed ``tsv``, ranked by ``ts_rank_cd``.
  ``score`` = that rank.
* **hybrid**: the best ``candidates`` of each list, fused: ``score`` = the sum over the
  lists a segment is in of ``1 / (60 + rank)`` (RRF, k = 60; ranks from 1).

Every hit reports its ``vector_rank`` and ``keyword_rank`` (``None`` when it is not in
that list) and ``similarity`` (cosine, ``None`` when not vector-ranked).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.vector_indexes import OWN_INDEX_SQL

MODES = ("semantic", "keyword", "hybrid")
RRF_K = 60


@dataclass(frozen=True)
class SearchTuning:
    """How the vector list is searched (``SEARCH_*`` in the environment, see app.search)."""

    ef_search: int = 200
    exact_max: int = 20_000
    max_scan_tuples: int = 100_000
    candidates: int = 50
    own_index_branches: int = 4

    @classmethod
    def from_env(cls) -> SearchTuning:
        """``SEARCH_EF_SEARCH``, ``SEARCH_EXACT_MAX``, ``SEARCH_MAX_SCAN_TUPLES``,
        ``SEARCH_CANDIDATES``, ``SEARCH_OWN_INDEX_BRANCHES``; unset: the defaults."""
        env = os.environ.get
        default = cls()
        return cls(**{name: int(env(f"SEARCH_{name.upper()}") or getattr(default, name))
                      for name in ("ef_search", "exact_max", "max_scan_tuples",
                                   "candidates", "own_index_branches")})


@dataclass(frozen=True)
class CollectionSize:
    """A searched collection: its segment count, and whether it has a valid own index."""

    pk: int
    segments: int
    own_index: bool = False


_DISTANCE = "embedding <=> CAST(:vec AS vector)"
_SHARED = """(SELECT id, {distance} AS distance FROM segments
     WHERE collection_pk = ANY(CAST(:vector_pks AS bigint[])) ORDER BY {order} LIMIT :n)"""
# The literal pk matches the partial index's predicate (a parameter would not).
_OWN = """(SELECT id, {distance} AS distance FROM segments
     WHERE collection_pk = {pk} ORDER BY {distance} LIMIT :n)"""
_VECTOR = """
vector_hits AS MATERIALIZED (
    SELECT id, distance FROM ({walks}) walks ORDER BY distance, id LIMIT :n),
vector_ranked AS (
    SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank
    FROM vector_hits)"""
_KEYWORD = """
keyword_hits AS MATERIALIZED (
    SELECT id, ts_rank_cd(tsv, CASE WHEN ts_config = 'english'::regconfig
                               THEN {english} ELSE {simple} END) AS rank_score
    FROM segments
    WHERE collection_pk = ANY(CAST(:pks AS bigint[]))
      AND ((tsv @@ {english} AND ts_config = 'english'::regconfig)
           OR (tsv @@ {simple} AND ts_config <> 'english'::regconfig))
    ORDER BY rank_score DESC, id LIMIT :n),
keyword_ranked AS (
    SELECT id, rank_score, row_number() OVER (ORDER BY rank_score DESC, id) AS rank
    FROM keyword_hits)"""
_ENGLISH = "websearch_to_tsquery('english', :q)"
_SIMPLE = "websearch_to_tsquery('simple', :q)"
_EMPTY_VECTOR = "vector_ranked AS (SELECT NULL::bigint AS id, NULL::float8 AS distance, " \
                "NULL::bigint AS rank WHERE false)"
_EMPTY_KEYWORD = "keyword_ranked AS (SELECT NULL::bigint AS id, NULL::float4 AS " \
                 "rank_score, NULL::bigint AS rank WHERE false)"
_SCORE = {
    "semantic": "1 - f.distance",
    "keyword": "f.rank_score",
    "hybrid": f"coalesce(1.0 / ({RRF_K} + f.vector_rank), 0) "
              f"+ coalesce(1.0 / ({RRF_K} + f.keyword_rank), 0)",
}
_SELECT = """
SELECT s.id, c.collection_id, m.media_id, m.task_id, s.start, s."end", s.text,
       f.vector_rank, f.keyword_rank, 1 - f.distance AS similarity, {score} AS score
FROM (SELECT coalesce(v.id, k.id) AS id, v.rank AS vector_rank, k.rank AS keyword_rank,
             v.distance, k.rank_score
      FROM vector_ranked v FULL JOIN keyword_ranked k ON k.id = v.id) f
JOIN segments s ON s.id = f.id
JOIN collection_media m ON m.id = s.media_pk
JOIN collections c ON c.id = s.collection_pk
ORDER BY score DESC, f.vector_rank NULLS LAST, f.keyword_rank NULLS LAST, s.id
LIMIT :k"""


def statement(mode: str, *, exact: bool, own: Sequence[int] = (),
              shared: bool = True) -> str:
    """The SQL of a search in ``mode`` (parameters ``pks``, ``vector_pks``, ``k``, ``n``,
    ``vec``, ``q``): ``own`` collections walk their own index, the ``vector_pks`` ones
    (unless not ``shared``) are scored exactly or on the shared index."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    order = f"({_DISTANCE}) + 0" if exact else _DISTANCE
    walks = [_OWN.format(distance=_DISTANCE, pk=int(pk)) for pk in own]
    if shared or not walks:
        walks.append(_SHARED.format(distance=_DISTANCE, order=order))
    parts = [_VECTOR.format(walks=" UNION ALL ".join(walks)) if mode != "keyword"
             else _EMPTY_VECTOR,
             _KEYWORD.format(english=_ENGLISH, simple=_SIMPLE) if mode != "semantic"
             else _EMPTY_KEYWORD]
    return "WITH " + ",".join(parts) + _SELECT.format(score=_SCORE[mode])


def collection_sizes(session: Session, collection_pks: Sequence[int]) -> list[CollectionSize]:
    """The collections' segment counts and own indexes (see :mod:`core.vector_indexes`)."""
    rows = session.execute(text(
        f"SELECT c.id, coalesce(sum(m.segment_count), 0) AS n, {OWN_INDEX_SQL} AS own "
        "FROM collections c LEFT JOIN collection_media m ON m.collection_pk = c.id "
        "WHERE c.id = ANY(CAST(:pks AS bigint[])) GROUP BY c.id"),
        {"pks": [int(pk) for pk in collection_pks]})
    return [CollectionSize(int(r.id), int(r.n), bool(r.own)) for r in rows]


def search(session: Session, collection_pks: Sequence[int], *, query: str,
           vector: str | None, mode: str, k: int, tuning: SearchTuning = SearchTuning(),
           sizes: Sequence[CollectionSize] | None = None) -> list[dict[str, Any]]:
    """The ``k`` best segments of the collections, best first (see the module doc).

    ``vector``: the query's embedding as a pgvector literal (not needed for keyword);
    ``sizes``: the collections' :func:`collection_sizes`, if the caller has them. Runs in
    ``session``'s transaction (its ``SET LOCAL`` settings end with it)."""
    pks = [int(pk) for pk in collection_pks]
    if not pks:
        return []
    n = k if mode != "hybrid" else max(k, tuning.candidates)
    if sizes is None:
        sizes = collection_sizes(session, pks)
    own = [c.pk for c in sizes if c.own_index and c.segments > 0]
    if len(own) > tuning.own_index_branches:  # too many walks: one on the shared index
        own = []
    rest = [c for c in sizes if c.pk not in own and c.segments > 0]
    exact = mode == "keyword" or sum(c.segments for c in rest) <= tuning.exact_max
    if mode != "keyword" and (own or not exact):
        session.execute(text(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.ef_search', :ef, true), "
            "set_config('hnsw.max_scan_tuples', :tuples, true)"),
            {"ef": str(max(tuning.ef_search, n)), "tuples": str(tuning.max_scan_tuples)})
    sql = statement(mode, exact=exact, own=own, shared=bool(rest))
    rows = session.execute(text(sql), {"pks": pks, "vector_pks": [c.pk for c in rest],
                                       "k": k, "n": n, "vec": vector, "q": query})
    return [{
        "collection_id": r.collection_id, "media_id": r.media_id,
        "task_id": str(r.task_id) if r.task_id else None, "start": r.start, "end": r.end,
        "text": r.text, "score": round(float(r.score), 6),
        "similarity": None if r.similarity is None else round(float(r.similarity), 6),
        "vector_rank": r.vector_rank, "keyword_rank": r.keyword_rank,
    } for r in rows]
