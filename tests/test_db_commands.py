"""``flask db import-sqlite`` (an older release's SQLite data, copied once) and
``flask db backup`` / ``flask db restore`` (the bundled pg_dump and pg_restore)."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import func, select, text

from app import create_app
from core.models import ApiKey, Task, TaskCount, TaskEvent
from core.models_collections import Segment
from tests.support import ROOT, fresh_database

FIXTURE = ROOT / "tests" / "fixtures" / "hark-sqlite-0005.sql"
# What the fixture holds (written by the schema-0005 code): tasks per (owner, status).
COUNTS = {("alice", "completed"): 2, ("alice", "failed"): 1, ("alice", "not_finished"): 1,
          ("bob", "completed"): 1, ("bob", "created"): 1, ("bob", "running"): 1}


@pytest.fixture()
def fresh_app(settings, pg_admin):
    """An app on a database of its own (migrated by the command under test)."""
    with fresh_database("hark_cmd") as url:
        application = create_app(replace(settings, database_url=url,
                                         api_bootstrap_key=None))
        yield application
        application.extensions["hark"]["waiter"].close()
        application.extensions["hark"]["db"].dispose()


def invoke(application, *args: str):
    return application.test_cli_runner().invoke(args=list(args))


def old_database(tmp_path):
    path = tmp_path / "hark.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(FIXTURE.read_text())
    conn.close()
    return path


def test_import_sqlite_copies_every_row_once(fresh_app, tmp_path):
    path = old_database(tmp_path)
    result = invoke(fresh_app, "db", "import-sqlite", str(path))
    assert result.exit_code == 0, result.output
    assert not path.exists() and (tmp_path / "hark.db.imported").exists()
    db = fresh_app.extensions["hark"]["db"]
    with db.session() as session:
        counts = {(o, s): n for o, s, n in session.execute(
            select(TaskCount.owner, TaskCount.status, func.sum(TaskCount.n))
            .group_by(TaskCount.owner, TaskCount.status)) if n}
        assert counts == COUNTS  # rebuilt by the count triggers, not copied
        done = session.scalars(select(Task).where(Task.id == uuid.UUID(int=1))).one()
        assert done.result == {"slept": 0.0, "nested": [1, {"a": None}]}
        assert done.data["émoji"] == "🎧" and done.completed_at.tzinfo is not None
        assert session.scalar(select(func.count()).select_from(TaskEvent)) == 4
        assert session.get(ApiKey, uuid.UUID(int=101)).revoked_at is not None
        # float32 bytes then, the same float32 values in a pgvector column now
        assert [struct.pack("<384f", *s.embedding) for s in
                session.scalars(select(Segment).order_by(Segment.idx))] \
            == [struct.pack("<384f", *[(i + k) / 1024 for i in range(384)]) for k in (0, 1)]
        chunks = session.execute(text("SELECT data FROM media_chunks ORDER BY idx")).scalars()
        assert b"".join(chunks) == b"\x00\x01\xffRIF"
        hook = session.execute(text("SELECT enabled, events FROM webhooks")).one()
        assert hook == (True, ["task.completed"])
        # Sequences moved past the copied ids: new rows do not collide.
        session.execute(text("INSERT INTO task_events (task_id, type, at) "
                             "VALUES (:t, 'created', now())"), {"t": uuid.UUID(int=2)})
        session.commit()
    # A second import into the same database is refused and changes nothing.
    again = old_database(tmp_path)
    refused = invoke(fresh_app, "db", "import-sqlite", str(again))
    assert refused.exit_code != 0 and "already holds tasks" in refused.output
    assert again.exists()


def test_import_refuses_a_file_that_is_not_hark(fresh_app, tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    result = invoke(fresh_app, "db", "import-sqlite", str(path))
    assert result.exit_code != 0 and "not a Hark SQLite database" in result.output


def test_backup_and_restore_round_trip(fresh_app, tmp_path):
    assert invoke(fresh_app, "db", "import-sqlite", str(old_database(tmp_path))).exit_code == 0
    backup = tmp_path / "hark.dump"
    result = invoke(fresh_app, "db", "backup", str(backup))
    assert result.exit_code == 0, result.output
    assert backup.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    db = fresh_app.extensions["hark"]["db"]
    with db.transaction() as session:  # damage after the backup
        revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        session.execute(text("DELETE FROM tasks WHERE owner = 'alice'"))
        session.execute(text("INSERT INTO api_keys (id, name, owner, key_hash, prefix, "
                             "is_admin, created_at) VALUES (:i, 'x', 'x', 'h', 'p', false, "
                             "now())"), {"i": uuid.uuid4()})
    result = invoke(fresh_app, "db", "restore", str(backup))
    assert result.exit_code == 0, result.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 7
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 3
        counts = {(o, s): n for o, s, n in session.execute(
            select(TaskCount.owner, TaskCount.status, func.sum(TaskCount.n))
            .group_by(TaskCount.owner, TaskCount.status)) if n}
        assert counts == COUNTS
        assert session.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == revision
        assert session.execute(text(
            "SELECT 1 FROM pg_extension WHERE extname = 'vector'")).scalar() == 1


def test_backup_uses_the_bundled_pg_dump_of_the_servers_major():
    from app.commands import pg_program
    from core.embedded import PG_MAJOR

    program = pg_program("pg_dump")
    assert f"pginstall{PG_MAJOR}" in program and shutil.which(program)
