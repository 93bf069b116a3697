"""Alembic ``upgrade head`` on an empty database produces exactly the models' schema."""

import uuid

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.commands import upgrade_database
from core.db import make_engine
from core.models import Base
from tests.support import PG_ADMIN_URL


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_postgres_schema_matches_models():
    name = f"hark_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade_database(url)
        assert _diff(url) == []
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_sqlite_schema_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'hark.db'}"
    upgrade_database(url)
    assert _diff(url) == []
