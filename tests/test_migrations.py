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
