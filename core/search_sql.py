"""Search over segments in PostgreSQL: by meaning (pgvector), by words (full-text), or
both fused with reciprocal rank fusion, in one statement. No Flask, no models.

* **semantic**: the segments nearest the query vector by cosine distance. When the
  searched collections hold at most ``exact_max`` segments they are scored exactly (the
  ``(collection_pk, id)`` index finds their rows); otherwise the HNSW index is walked with
  ``hnsw.iterative_scan = relaxed_order``, so that a small collection among large ones
  still gets its ``top_k`` (the walk goes on past ``ef_search`` candidates until enough
  rows of the collection were found or ``max_scan_tuples`` were seen), and the found rows
  are re-sorted by distance. ``score`` = cosine similarity.
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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

MODES = ("semantic", "keyword", "hybrid")
RRF_K = 60


@dataclass(frozen=True)
class SearchTuning:
    """How the vector list is searched (``SEARCH_*`` in the environment, see app.search)."""

    ef_search: int = 100
    exact_max: int = 20_000
    max_scan_tuples: int = 100_000
    candidates: int = 50


_VECTOR = """
vector_hits AS MATERIALIZED (
    SELECT id, embedding <=> CAST(:vec AS vector) AS distance FROM segments
    WHERE collection_pk = ANY(CAST(:pks AS bigint[]))
    ORDER BY {order} LIMIT :n),
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


def statement(mode: str, *, exact: bool) -> str:
    """The SQL of a search in ``mode`` (parameters ``pks``, ``k``, ``n``, ``vec``, ``q``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    order = "(embedding <=> CAST(:vec AS vector)) + 0" if exact \
        else "embedding <=> CAST(:vec AS vector)"
    parts = [_VECTOR.format(order=order) if mode != "keyword" else _EMPTY_VECTOR,
             _KEYWORD.format(english=_ENGLISH, simple=_SIMPLE) if mode != "semantic"
             else _EMPTY_KEYWORD]
    return "WITH " + ",".join(parts) + _SELECT.format(score=_SCORE[mode])


def total_segments(session: Session, collection_pks: Sequence[int]) -> int:
    return int(session.execute(text(
        "SELECT coalesce(sum(segment_count), 0) FROM collection_media "
        "WHERE collection_pk = ANY(CAST(:pks AS bigint[]))"),
        {"pks": list(collection_pks)}).scalar_one())


def search(session: Session, collection_pks: Sequence[int], *, query: str,
           vector: str | None, mode: str, k: int, tuning: SearchTuning = SearchTuning(),
           total: int | None = None) -> list[dict[str, Any]]:
    """The ``k`` best segments of the collections, best first (see the module doc).

    ``vector``: the query's embedding as a pgvector literal (not needed for keyword);
    ``total``: the collections' segment count, if the caller has it. Runs in
    ``session``'s transaction (its ``SET LOCAL`` settings end with it)."""
    pks = [int(pk) for pk in collection_pks]
    if not pks:
        return []
    n = k if mode != "hybrid" else max(k, tuning.candidates)
    if total is None:
        total = total_segments(session, pks)
    exact = mode == "keyword" or total <= tuning.exact_max
    if not exact:
        session.execute(text(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.ef_search', :ef, true), "
            "set_config('hnsw.max_scan_tuples', :tuples, true)"),
            {"ef": str(max(tuning.ef_search, n)), "tuples": str(tuning.max_scan_tuples)})
    rows = session.execute(text(statement(mode, exact=exact)),
                           {"pks": pks, "k": k, "n": n, "vec": vector, "q": query})
    return [{
        "collection_id": r.collection_id, "media_id": r.media_id,
        "task_id": str(r.task_id) if r.task_id else None, "start": r.start, "end": r.end,
        "text": r.text, "score": round(float(r.score), 6),
        "similarity": None if r.similarity is None else round(float(r.similarity), 6),
        "vector_rank": r.vector_rank, "keyword_rank": r.keyword_rank,
    } for r in rows]
