"""Fixtures: a real PostgreSQL database and Redis broker per session, a real worker.

Each session starts a private PostgreSQL 18 with pgvector (or uses ``TEST_PG_ADMIN_URL``),
creates its own database there (migrated with Alembic, as in production) and uses a
dedicated Redis database; tables are emptied before every test.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import text

from core.config import Settings
from core.models import Base
from tests.support import (
    TEST_REDIS_DB,
    database_url_of,
    pg_admin_url,
    start_embed_worker,
    start_worker,
    stop_private_pg,
    wait_for,
)

BROKER_URL = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"


@pytest.fixture(scope="session")
def pg_admin():
    """The admin URL of the session's PostgreSQL (private, with pgvector; see support)."""
    yield pg_admin_url()
    stop_private_pg()


@pytest.fixture(scope="session")
def database_url(pg_admin):
    name = f"hark_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url_of(pg_admin, name)
    from app.commands import upgrade_database

    upgrade_database(url)
    yield url
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def settings_env(database_url, tmp_path_factory) -> dict[str, str]:
    """Environment for every platform process of this session (API, workers)."""
    data_dir = tmp_path_factory.mktemp("data")
    prefix = f"hark-test-{uuid.uuid4().hex[:8]}:"
    yield {
        "DATABASE_URL": database_url,
        "BROKER_URL": BROKER_URL,
        "DATA_DIR": str(data_dir),
        "DIAGNOSTICS": "1",
        "HEARTBEAT_INTERVAL": "0.5",
        "HEARTBEAT_TIMEOUT": "3",
        "SWEEP_INTERVAL": "1",
        "CREATED_GRACE": "1",
        "ASSIGNED_GRACE": "2",
        "KEY_CACHE_SECONDS": "0",
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "MEDIA_ALLOW_PRIVATE": "1",
        "MODELS_DIR": os.environ.get("MODELS_DIR", str(Path("var/models").resolve())),
        # Concurrent test sessions share Redis: each gets its own key namespace.
        "BROKER_KEY_PREFIX": prefix,
        "URL_SIGNING_SECRET": "test-url-signing-secret",
        # Many tests park tasks on queues no worker consumes; tests/test_queues.py
        # checks the refusal. Presence is read afresh (workers come and go per test),
        # and failed authentications are limited only in tests/test_auth_limit.py.
        "ALLOW_UNKNOWN_QUEUES": "1",
        "PRESENCE_CACHE_SECONDS": "0",
        "AUTH_FAILURES_PER_MINUTE": "0",
    }
    client = redis.Redis.from_url(BROKER_URL)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


@pytest.fixture(scope="session")
def settings(settings_env, monkeypatch_session) -> Settings:
    for key, value in settings_env.items():
        monkeypatch_session.setenv(key, value)
    return Settings.from_env()


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="session")
def app(settings):
    from app import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["hark"]["waiter"].close()
    application.extensions["hark"]["db"].dispose()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Empty every table before each test that uses the database."""
    if "database_url" not in request.fixturenames and "app" not in request.fixturenames:
        yield
        return
    url = request.getfixturevalue("database_url")
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    # A worker still finishing the previous test's task may lock rows in another order;
    # PostgreSQL then picks the TRUNCATE as the deadlock victim: try again.
    for attempt in range(10):
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
            break
        except psycopg.errors.DeadlockDetected:
            if attempt == 9:
                raise
            time.sleep(0.1)
    if "app" in request.fixturenames:
        request.getfixturevalue("app").extensions["hark"]["principals"].clear()
    yield


@pytest.fixture()
def db(app):
    return app.extensions["hark"]["db"]


def _make_key(db, owner: str, admin: bool = False) -> str:
    from core.keys import create_key

    with db.transaction() as session:
        _, raw = create_key(session, name=owner, owner=owner, is_admin=admin)
    return raw


@pytest.fixture()
def api_key(db) -> str:
    return _make_key(db, "alice")


@pytest.fixture()
def other_key(db) -> str:
    return _make_key(db, "bob")


@pytest.fixture()
def admin_key(db) -> str:
    return _make_key(db, "root", admin=True)


@pytest.fixture()
def auth(api_key) -> dict[str, str]:
    return {"x-api-key": api_key}


@pytest.fixture(scope="session")
def worker(settings_env, log_dir, app):
    """A real Celery worker on the CPU queue for the session, in the pool ``make run`` and
    compose start (one process batching ``WORKER_BATCH_TASKS`` tasks), with two task
    slots, so tests can fill it."""
    proc = start_worker(settings_env, log_dir, name="session", WORKER_BATCH_TASKS="2")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def embed_worker(settings_env, log_dir, app):
    """A real ``embed`` worker for the session (query embeddings for searches), ready once
    it answered a first query."""
    from app.search import EmbeddingUnavailable

    proc = start_embed_worker(settings_env, log_dir)
    embedder = app.extensions["query_embedder"]

    def answered() -> bool:
        try:
            return bool(embedder("warm up"))
        except EmbeddingUnavailable:
            return False

    try:
        wait_for(answered, timeout=120, interval=0.1, message="the embed worker's first answer")
    except AssertionError:
        proc.stop()
        raise AssertionError("embed worker did not answer:\n" + proc.output()[-3000:]) from None
    yield proc
    proc.stop()


def sql(db, statement: str, **params):
    with db.transaction() as session:
        return session.execute(text(statement), params)
