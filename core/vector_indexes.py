"""Own HNSW indexes for large collections, so that searching one walks only its segments.

The shared HNSW index over every segment serves a search of one collection by walking the
graph of all collections and keeping that one's rows (pgvector's iterative scan). At 1M
segments over 100 collections that found 0.65-0.75 of the exact top 10 for collections of
20k-120k segments (``hnsw.ef_search`` 100-400): most of the walk is spent among other
collections' segments. A partial HNSW index per large collection (``WHERE collection_pk =
<pk>``) holds only its segments, and a search of that collection is an unfiltered walk:
recall@10 0.99 at ``ef_search`` 200, 7 ms p50 (``bench/search_bench.py``).

:func:`maintain` (Celery beat, every minute, on the maintenance queue) builds one,
``CONCURRENTLY`` (indexing goes on meanwhile), for each collection above
``SEARCH_EXACT_MAX`` segments (smaller ones are scored exactly), and drops the indexes of
deleted collections, of collections shrunk to half that, and those a crash or an error
left half-built (a failed build is logged and tried again on the next run; the other
collections still get theirs). One worker at a time does this (a
PostgreSQL advisory lock). The catalog is the record: :mod:`core.search_sql` uses a
collection's index once PostgreSQL marks it valid, and the shared index until then.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

INDEX_PREFIX = "ix_segments_hnsw_c"
MAINTAIN_TASK = "hark.vector_indexes"
MAINTAIN_INTERVAL = 60.0
_LOCK_KEY = 0x6861726B_7669  # pg_advisory_lock key: "hark" "vi"
_MB = 1024 * 1024
_NAME = re.compile(rf"^{INDEX_PREFIX}(\d+)$")

# The valid own index of a collection, as the search reads it (NULL: none, or not ready).
OWN_INDEX_SQL = (f"coalesce((SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = "
                 f"to_regclass('{INDEX_PREFIX}' || c.id)), false)")


def index_name(collection_pk: int) -> str:
    return f"{INDEX_PREFIX}{int(collection_pk)}"


def build_memory(rows: int, ram_bytes: int | None = None) -> str:
    """``maintenance_work_mem`` for an HNSW build over ``rows`` vectors of 384 floats:
    about 2 KB a vector, so the graph is built in memory (at 1M vectors a build that
    spilled took 784 s, one in memory 190 s), from 64 MB up to a quarter of the memory of
    the machine this runs on (at least 1 GB, at most 8 GB), which is PostgreSQL's only
    where they share a host. ``HNSW_BUILD_MEMORY`` (e.g. ``2GB``) overrides: set it where
    the database has a machine of its own."""
    override = os.environ.get("HNSW_BUILD_MEMORY", "").strip()
    if override:
        return override
    if ram_bytes is None:
        ram_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cap = min(max(ram_bytes // 4, 1024 * _MB), 8192 * _MB)
    wanted = min(max(rows * 2048, 64 * _MB), cap)
    return f"{wanted // _MB}MB"


def own_indexes(conn: psycopg.Connection) -> dict[int, bool]:
    """``{collection pk: valid}`` of the per-collection indexes that exist."""
    rows = conn.execute(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = "
        "i.indexrelid WHERE c.relname LIKE %s", (INDEX_PREFIX.replace("_", r"\_") + "%",))
    found = {}
    for name, valid in rows:
        match = _NAME.match(name)
        if match:
            found[int(match.group(1))] = bool(valid)
    return found


def maintain(database_url: str, threshold: int) -> dict[str, Any]:
    """Build the missing own indexes of collections above ``threshold`` segments, drop
    those of deleted collections and half-built ones; what it did. Skipped while another
    process is at it."""
    report: dict[str, Any] = {"built": [], "dropped": [], "skipped": False}
    dsn = "postgresql://" + database_url.partition("://")[2]  # any driver's URL, for libpq
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()[0]:
            report["skipped"] = True
            return report
        try:
            existing = own_indexes(conn)
            sizes = dict(conn.execute(
                "SELECT c.id, coalesce(sum(m.segment_count), 0) FROM collections c "
                "LEFT JOIN collection_media m ON m.collection_pk = c.id GROUP BY c.id"))
            for pk, valid in existing.items():
                # half-built (a crash), deleted, or shrunk well below the threshold (where
                # exact scoring is cheap and exact)
                if not valid or pk not in sizes or sizes[pk] <= threshold // 2:
                    _drop(conn, pk)
                    report["dropped"].append(pk)
            for pk, n in sorted(sizes.items(), key=lambda item: -item[1]):
                if n > threshold and not existing.get(pk):
                    try:
                        _build(conn, pk, int(n))
                    except psycopg.Error as exc:  # the others still get theirs
                        log.warning("own HNSW index of collection %s failed: %s", pk, exc)
                        report.setdefault("failed", []).append(pk)
                        continue
                    report["built"].append(pk)
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            except psycopg.Error:  # the connection is gone: so is its lock
                pass
    if report["built"] or report["dropped"]:
        log.info("vector indexes: %s", report)
    return report


def _drop(conn: psycopg.Connection, pk: int) -> None:
    conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
        sql.Identifier(index_name(pk))))


def _build(conn: psycopg.Connection, pk: int, rows: int) -> None:
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(
        sql.Literal(build_memory(rows))))
    conn.execute(sql.SQL(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON segments "
        "USING hnsw (embedding vector_cosine_ops) WHERE collection_pk = {}").format(
        sql.Identifier(index_name(pk)), sql.Literal(int(pk))))
    conn.execute("RESET maintenance_work_mem")
