"""The workers' fixed PostgreSQL moves write what the generic ORM moves write elsewhere."""

from __future__ import annotations

import json

import psycopg
from sqlalchemy import select

from app.commands import upgrade_database
from core import lifecycle
from core.db import Database
from core.models import Task, TaskEvent
from core.models_webhooks import Webhook
from core.schemas import TaskSchema
from core.task_reads import read_task, task_from_notify
from core.task_sql import FINISHED_CHANNEL

ROW = ("status", "attempts", "progress", "worker", "device", "result", "error")


def _scenario(db: Database) -> dict:
    """Claim, fail, claim again, a fenced-out and then a fenced-in completion."""
    with db.transaction() as s:
        task = lifecycle.create_task(s, owner="alice", endpoint="/x", data={"k": 1})
        s.add(Webhook(owner="alice", url="https://example.com/h", secret="s"))
    seen = []
    with db.transaction() as s:
        seen.append(lifecycle.claim(s, task.id, worker="w1", device="cpu"))
    with db.transaction() as s:
        seen.append(lifecycle.fail(s, task.id, {"type": "E", "message": "boom"}, attempt=1))
        s.execute(Task.__table__.update().where(Task.id == task.id).values(status="created"))
    with db.transaction() as s:
        seen.append(lifecycle.claim(s, task.id, worker="w2", device="cuda:0"))
        seen.append(lifecycle.complete(s, task.id, {"text": "hi"}, attempt=1))  # fenced out
        seen.append(lifecycle.fail(s, task.id, {"type": "E", "message": "m"}, attempt=1))
    with db.transaction() as s:
        seen.append(lifecycle.complete(s, task.id, {"text": "hi"}, attempt=2))
        seen.append(lifecycle.claim(s, task.id, worker="w3", device="cpu"))  # finished
    with db.session() as s:
        row = s.scalars(select(Task).where(Task.id == task.id)).one()
        trail = [(e.type, e.details) for e in
                 s.scalars(select(TaskEvent).where(TaskEvent.task_id == task.id)
                           .order_by(TaskEvent.id))]
        times = (row.started_at, row.completed_at, row.heartbeat_at, row.assigned_at)
    return {
        "moves": [None if m is None else
                  (m.id == task.id, m.owner, m.endpoint, m.data, m.status, m.attempts,
                   m.subscribed) for m in seen],
        "row": tuple(getattr(row, c) for c in ROW),
        "times_set": all(t is not None for t in times),
        "trail": trail,
    }


def _on_sqlite(tmp_path, run):
    """``run(db)`` on a fresh, migrated SQLite database: the generic path's answer."""
    url = f"sqlite:///{tmp_path / 'hark.db'}"
    upgrade_database(url)
    sqlite = Database().configure(url)
    try:
        return run(sqlite)
    finally:
        sqlite.dispose()


def test_postgres_moves_match_the_generic_ones(db, tmp_path):
    expected = _on_sqlite(tmp_path, _scenario)
    assert db.dialect == "postgresql"
    assert _scenario(db) == expected
    assert expected["trail"] == [
        ("created", {"endpoint": "/x", "queue": None}),
        ("started", {"worker": "w1", "device": "cpu", "attempt": 1}),
        ("failed", {"type": "E", "message": "boom"}),
        ("started", {"worker": "w2", "device": "cuda:0", "attempt": 2}),
        ("completed", None),
    ]
    assert expected["moves"][0] == (True, "alice", "/x", {"k": 1}, "running", 1, True)
    assert expected["moves"][3:5] == [None, None]
    assert expected["row"] == ("completed", 2, 100, "w2", "cuda:0", {"text": "hi"}, None)


def test_finishing_moves_notify_waiters_with_the_row(db, database_url):
    """A finish announces the whole public row (read back exactly as ``read_task``
    reads it), on the channel the message named; a large row by its id; a finish nobody
    waits on, not at all."""
    with db.transaction() as s:
        ids = [lifecycle.create_task(s, owner="bob", endpoint="/x", data={"n": i}).id
               for i in range(5)]
    big = {"text": "x" * 9000}
    own = "hark_done_test_1"
    with psycopg.connect(database_url, autocommit=True) as shared, \
            psycopg.connect(database_url, autocommit=True) as api_process:
        shared.execute(f"LISTEN {FINISHED_CHANNEL}")
        api_process.execute(f"LISTEN {own}")
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            for task_id in ids:
                assert lifecycle.claim(conn, task_id, worker="w", device="cpu").subscribed \
                    is False
            assert lifecycle.complete(conn, ids[0], {"words": 2}, 1, notify=own)
            assert lifecycle.fail(conn, ids[1], {"type": "E", "message": "m"}, 1, notify=own)
            assert lifecycle.complete(conn, ids[2], big, 1, notify=False)  # deferred
            assert lifecycle.complete(conn, ids[3], big, 1, notify=own)  # too large
            assert lifecycle.complete(conn, ids[4], {}, 1, notify="Bad Name!")  # shared
        mine = [n.payload for n in api_process.notifies(timeout=2, stop_after=3)]
        others = [n.payload for n in shared.notifies(timeout=0.5)]
    assert len(mine) == 3 and mine[2] == str(ids[3])
    assert len(others) == 1 and json.loads(others[0])["id"] == str(ids[4])
    schema = TaskSchema()
    for task_id, payload in zip(ids[:2], mine[:2], strict=True):
        announced = task_from_notify(json.loads(payload))
        assert schema.dump(announced) == schema.dump(read_task(db, task_id))
        assert announced.status in ("completed", "failed")


def _submissions(db: Database) -> list:
    """Inserts as the API makes them: assigned or not, under an active-task cap."""
    made = []
    with db.engine.connect() as conn:
        for assigned, max_active in ((True, 0), (False, 0), (True, 3), (True, 3)):
            task = lifecycle.insert_task(conn, owner="carol", endpoint="/e", data={"a": [1]},
                                         priority=2, queue="cuda:0", max_active=max_active,
                                         assigned=assigned)
            made.append(task and task.id)
        conn.commit()
    with db.session() as s:
        rows = {t.id: t for t in s.scalars(select(Task))}
        trails = {i: [(e.type, e.details) for e in s.scalars(
            select(TaskEvent).where(TaskEvent.task_id == i).order_by(TaskEvent.id))]
            for i in made if i}
    return [None if i is None else
            (tuple(getattr(rows[i], c) for c in ("owner", "endpoint", "data", "status",
                                                  "priority", "queue", "progress",
                                                  "retry_count", "attempts")),
             rows[i].assigned_at is not None, rows[i].created_at == rows[i].updated_at,
             trails[i]) for i in made]


def test_postgres_insert_matches_the_generic_one(db, tmp_path):
    expected = _on_sqlite(tmp_path, _submissions)
    assert _submissions(db) == expected
    assigned = [("created", {"endpoint": "/e", "queue": "cuda:0"}),
                ("assigned", {"queue": "cuda:0"})]
    assert expected[0] == (("carol", "/e", {"a": [1]}, "assigned", 2, "cuda:0", 0, 0, 0),
                           True, True, assigned)
    assert expected[1][0][3] == "created" and expected[1][3] == assigned[:1]
    assert expected[3] is None  # the cap of 3 active tasks refused the fourth
