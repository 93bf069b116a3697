"""Alembic ``upgrade head`` on an empty database produces exactly the models' schema;
migration 0006 needs pgvector and says so."""

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.commands import upgrade_database
from core.db import make_engine
from core.models import Base
from tests.support import database_url_of, fresh_database


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_postgres_schema_matches_models(pg_admin):
    with fresh_database("hark_mig") as url:
        upgrade_database(url)
        assert _diff(url) == []


def test_pgvector_is_installed_by_migration_0006(database_url):
    with psycopg.connect(database_url) as conn:
        version = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert version is not None and tuple(map(int, version[0].split("."))) >= (0, 8)
        assert conn.execute("SELECT '[1,2]'::vector <-> '[1,3]'::vector").fetchone()[0] == 1


SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"  # PostgreSQL 15, no pgvector


def test_without_pgvector_the_upgrade_names_the_extension():
    """A server without pgvector fails at 0006 with how to get it, not a bare SQL error."""
    try:
        admin = psycopg.connect(SYSTEM_PG, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 to try a server without pgvector on")
    with admin:
        if admin.execute("SELECT 1 FROM pg_available_extensions "
                         "WHERE name = 'vector'").fetchone():
            pytest.skip("the PostgreSQL at 127.0.0.1:5432 has pgvector")
        name = f"hark_nopgv_{uuid.uuid4().hex[:8]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with pytest.raises(RuntimeError, match="pgvector") as raised:
                upgrade_database(database_url_of(SYSTEM_PG, name))
            assert "pgvector/pgvector:pg18" in str(raised.value)
            with psycopg.connect(database_url_of(SYSTEM_PG, name)) as conn:  # all rolled back
                assert conn.execute("SELECT to_regclass('tasks')").fetchone() == (None,)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alembic(url: str, action: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from app.commands import ROOT

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    getattr(command, action)(config, revision)


def _collection(conn, media: list[tuple[str, str, int]]) -> None:
    """Collection 1 with ``(media_id, language, segment_count)`` media (pks 1, 2, ...)."""
    conn.execute("INSERT INTO collections (owner, collection_id, name, version, "
                 "reset_version, created_at, updated_at) VALUES "
                 "('o', 'c', 'c', 1, 0, now(), now())")
    for media_id, language, segments in media:
        conn.execute("INSERT INTO collection_media (collection_pk, media_id, language, "
                     "segment_count, created_at) VALUES (1, %s, %s, %s, now())",
                     (media_id, language, segments))


def test_0011_moves_stored_vectors_into_pgvector_and_back(pg_admin, monkeypatch):
    """Float32 bytes (0004-0010) become ``vector(384)`` values, searchable through the HNSW
    index, with a ``tsvector`` per segment ('english' for English media); the downgrade
    gives the same bytes back. More segments than one conversion batch."""
    import random
    import struct

    count = 2500
    rng = random.Random(17)
    vectors = [[rng.gauss(0, 1) for _ in range(384)] for _ in range(count)]
    packed = [struct.pack("<384f", *v) for v in vectors]
    with fresh_database("hark_mig") as url:
        _alembic(url, "upgrade", "0010")
        with psycopg.connect(url) as conn:
            _collection(conn, [("en", "en", count - 1), ("de", "de", 1)])
            with conn.cursor() as cursor:
                cursor.executemany(
                    'INSERT INTO segments (media_pk, collection_pk, idx, start, "end", text, '
                    "embedding) VALUES (%s, 1, %s, 0, 1, %s, %s)",
                    [(1 if i else 2, i, "the trains are running" if i else "die Züge fahren",
                      packed[i]) for i in range(count)])
        _alembic(url, "upgrade", "0011")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                "WHERE attrelid = 'segments'::regclass "
                                "AND attname = 'embedding'").fetchone() == ("vector(384)",)
            stored = conn.execute("SELECT embedding::text FROM segments WHERE idx = 1234"
                                  ).fetchone()[0]
            assert struct.pack("<384f", *map(float, stored.strip("[]").split(","))) \
                == packed[1234]
            conn.execute("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT id FROM segments ORDER BY embedding <=> %s::vector LIMIT 3",
                (stored,)))
            assert "ix_segments_embedding_hnsw" in plan
            conn.execute("SET enable_indexscan = off")  # exact: the vectors are the same
            nearest = conn.execute("SELECT idx FROM segments ORDER BY embedding <=> %s::vector "
                                   "LIMIT 2", (stored,)).fetchall()
            assert nearest[0] == (1234,)
            configs = dict(conn.execute("SELECT idx, ts_config::text FROM segments "
                                        "WHERE idx IN (0, 1)").fetchall())
            assert configs == {0: "simple", 1: "english"}
            assert conn.execute("SELECT count(*) FROM segments WHERE tsv @@ "
                                "to_tsquery('english', 'train')").fetchone() == (count - 1,)
        assert _diff(url) == []
        _alembic(url, "downgrade", "0010")
        with psycopg.connect(url) as conn:
            back = conn.execute("SELECT embedding FROM segments ORDER BY idx").fetchall()
            assert [bytes(b[0]) for b in back] == packed


def test_hnsw_builds_are_sized_to_the_index_and_the_host(monkeypatch):
    from core.vector_indexes import build_memory

    monkeypatch.delenv("HNSW_BUILD_MEMORY", raising=False)
    gib = 1024 ** 3
    assert build_memory(0, ram_bytes=24 * gib) == "64MB"
    assert build_memory(100_000, ram_bytes=24 * gib) == "195MB"  # about 2 KB a segment
    assert build_memory(1_000_000, ram_bytes=24 * gib) == "1953MB"  # in memory, not spilled
    assert build_memory(10_000_000, ram_bytes=24 * gib) == "6144MB"  # a quarter of the host
    assert build_memory(10_000_000, ram_bytes=2 * gib) == "1024MB"  # at least 1 GB
    assert build_memory(10_000_000, ram_bytes=256 * gib) == "8192MB"  # at most 8 GB
    monkeypatch.setenv("HNSW_BUILD_MEMORY", "4GB")
    assert build_memory(10) == "4GB"


def test_0012_stores_vectors_inline(pg_admin):
    """After 0012 a segment's vector is in its row, not in the TOAST table, for rows
    written before it (rewritten) and after it, with the index still walking them."""
    import random

    rng = random.Random(5)

    def literal() -> str:
        return "[" + ",".join(f"{rng.gauss(0, 1):.6f}" for _ in range(384)) + "]"

    long_text = "words spoken at length " * 40  # with the vector, past the ~2 KB threshold
    with fresh_database("hark_mig") as url:
        _alembic(url, "upgrade", "0011")
        with psycopg.connect(url) as conn:
            _collection(conn, [("m", "en", 60)])
            insert = ('INSERT INTO segments (media_pk, collection_pk, idx, start, "end", '
                      "text, embedding) VALUES (1, 1, %s, 0, 1, %s, %s::vector)")
            for i in range(30):
                conn.execute(insert, (i, long_text, literal()))
            toasted = conn.execute("SELECT pg_relation_size(reltoastrelid) FROM pg_class "
                                   "WHERE relname = 'segments'").fetchone()[0]
            assert toasted > 0  # before: the vectors went to TOAST
        _alembic(url, "upgrade", "0012")
        with psycopg.connect(url) as conn:
            for i in range(30, 60):
                conn.execute(insert, (i, long_text, literal()))
            storage = conn.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = "
                                   "'segments'::regclass AND attname = 'embedding'").fetchone()
            assert storage == ("p",)
            # a vector read from its row needs no TOAST lookup: all 60 are plain datums
            assert conn.execute("SELECT count(*) FROM segments WHERE "
                                "pg_column_compression(embedding) IS NULL AND "
                                "pg_column_toast_chunk_id(embedding) IS NULL").fetchone() == (60,)
            conn.execute("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT id FROM segments ORDER BY embedding <=> %s::vector LIMIT 3",
                (literal(),)))
            assert "ix_segments_embedding_hnsw" in plan
        assert _diff(url) == []
        _alembic(url, "downgrade", "0011")
