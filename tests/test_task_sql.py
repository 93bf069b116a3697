"""The fixed status moves: what they write (row, trail, outbox deliveries) and what they
refuse (compare-and-set on what the caller saw), and the completion notify."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select

from core import lifecycle
from core.idempotency import KEY_LIFETIME, KeyHeld
from core.models import Task, TaskEvent, utcnow
from core.models_idempotency import IdempotencyKey as Key
from core.models_webhooks import Webhook, WebhookDelivery
from core.schemas import TaskSchema
from core.task_reads import read_task, task_from_notify
from core.task_sql import DELIVERIES_CHANNEL, FINISHED_CHANNEL

ROW = ("status", "attempts", "progress", "worker", "device", "result", "error")


def _task(db, **data):
    with db.transaction() as s:
        return lifecycle.create_task(s, owner="alice", endpoint="/x", data=data or {"k": 1})


def _row(db, task_id) -> Task:
    with db.session() as s:
        return s.scalars(select(Task).where(Task.id == task_id)).one()


def _deliveries(db, task_id) -> list[tuple]:
    with db.session() as s:
        return [(d.event, d.task_attempt, d.webhook_id is not None, d.url, d.status)
                for d in s.scalars(select(WebhookDelivery)
                                   .where(WebhookDelivery.task_id == task_id)
                                   .order_by(WebhookDelivery.created_at,
                                             WebhookDelivery.event))]


def test_moves_write_row_trail_and_deliveries_and_fence_on_the_attempt(db):
    with db.transaction() as s:
        s.add(Webhook(owner="alice", url="https://example.com/h", secret="s",
                      events=["task.started", "task.completed"]))
        s.add(Webhook(owner="alice", url="https://example.com/off", secret="s", enabled=False))
        s.add(Webhook(owner="bob", url="https://example.com/bob", secret="s"))
    task = _task(db, k=1, webhook="https://example.com/cb", webhook_events=["task.failed"])
    with db.transaction() as s:
        first = lifecycle.claim(s, task.id, worker="w1", device="cpu")
    assert (first.owner, first.endpoint, first.status, first.attempts) == \
        ("alice", "/x", "running", 1)
    with db.transaction() as s:
        assert lifecycle.fail(s, task.id, {"type": "E", "message": "boom"}, attempt=1)
        s.execute(Task.__table__.update().where(Task.id == task.id).values(status="created"))
    with db.transaction() as s:
        assert lifecycle.claim(s, task.id, worker="w2", device="cuda:0").attempts == 2
        assert lifecycle.complete(s, task.id, {"text": "x"}, attempt=1) is None  # fenced out
        assert lifecycle.fail(s, task.id, {"type": "E", "message": "m"}, attempt=1) is None
    with db.transaction() as s:
        assert lifecycle.complete(s, task.id, {"text": "hi"}, attempt=2).status == "completed"
        assert lifecycle.claim(s, task.id, worker="w3", device="cpu") is None  # finished
        assert lifecycle.fail(s, task.id, {"type": "E", "message": "m"}, attempt=2) is None
    row = _row(db, task.id)
    assert tuple(getattr(row, c) for c in ROW) == \
        ("completed", 2, 100, "w2", "cuda:0", {"text": "hi"}, None)
    with db.session() as s:
        trail = [(e.type, e.details) for e in s.scalars(
            select(TaskEvent).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id))]
    assert trail == [
        ("created", {"endpoint": "/x", "queue": None}),
        ("started", {"worker": "w1", "device": "cpu", "attempt": 1}),
        ("failed", {"type": "E", "message": "boom"}),
        ("started", {"worker": "w2", "device": "cuda:0", "attempt": 2}),
        ("completed", None),
    ]
    # One delivery per matching enabled subscription of the owner, and the task's own
    # callback for the events it asked for; none for moves that did not apply.
    assert _deliveries(db, task.id) == [
        ("task.started", 1, True, None, "pending"),
        ("task.failed", 1, False, "https://example.com/cb", "pending"),
        ("task.started", 2, True, None, "pending"),
        ("task.completed", 2, True, None, "pending"),
    ]
    with db.session() as s:
        ids = {(d.event, d.task_attempt): d.message_id
               for d in s.scalars(select(WebhookDelivery))}
    assert len(set(ids.values())) == 4 and all(m.startswith("msg_") for m in ids.values())


def test_sweeper_moves_apply_only_to_what_it_saw(db):
    task = _task(db)
    with db.transaction() as s:
        lifecycle.claim(s, task.id, worker="w", device="cpu")
    seen = _row(db, task.id)  # running, attempt 1, heartbeat just now
    later = utcnow() + timedelta(seconds=1)
    with db.transaction() as s:  # a fresh heartbeat: not stale
        assert lifecycle.declare_lost(s, seen, stale_before=seen.heartbeat_at,
                                      reason="r", give_up=False) is None
    with db.transaction() as s:  # claimed again since (attempt 2): not what was seen
        s.execute(Task.__table__.update().where(Task.id == task.id)
                  .values(attempts=2))
        assert lifecycle.declare_lost(s, seen, stale_before=later, reason="r",
                                      give_up=False) is None
        s.execute(Task.__table__.update().where(Task.id == task.id).values(attempts=1))
    with db.transaction() as s:
        lost = lifecycle.declare_lost(s, seen, stale_before=later, reason="worker died",
                                      give_up=False)
    assert lost.status == "not_finished"
    row = _row(db, task.id)
    assert (row.retry_count, row.error) == (1, {"type": "WorkerLost", "message": "worker died"})
    with db.transaction() as s:  # it is no longer running: nothing to declare
        assert lifecycle.declare_lost(s, seen, stale_before=later, reason="r",
                                      give_up=True) is None


def test_finishing_moves_notify_waiters_with_the_row(db, database_url):
    """A finish announces the whole public row (read back exactly as ``read_task``
    reads it), on the channel the message named; a large row by its id; a finish nobody
    waits on, not at all. The relay is woken only when a move wrote deliveries."""
    ids = [_task(db, n=i).id for i in range(5)]
    with db.transaction() as s:
        s.add(Webhook(owner="alice", url="https://example.com/h", secret="s",
                      events=["task.completed"]))
    big = {"text": "x" * 9000}
    own = "hark_done_test_1"
    with psycopg.connect(database_url, autocommit=True) as shared, \
            psycopg.connect(database_url, autocommit=True) as api_process, \
            psycopg.connect(database_url, autocommit=True) as relay:
        shared.execute(f"LISTEN {FINISHED_CHANNEL}")
        api_process.execute(f"LISTEN {own}")
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            for task_id in ids:
                assert lifecycle.claim(conn, task_id, worker="w", device="cpu")
            relay.execute(f"LISTEN {DELIVERIES_CHANNEL}")  # claims wrote no deliveries
            assert lifecycle.fail(conn, ids[1], {"type": "E", "message": "m"}, attempt=1,
                                  notify=own)
            assert not list(relay.notifies(timeout=0.3))
            assert lifecycle.complete(conn, ids[0], {"words": 2}, attempt=1, notify=own)
            assert lifecycle.complete(conn, ids[2], big, attempt=1, notify=False)  # deferred
            assert lifecycle.complete(conn, ids[3], big, attempt=1, notify=own)  # too large
            assert lifecycle.complete(conn, ids[4], {}, attempt=1, notify="Bad Name!")
        mine = [n.payload for n in api_process.notifies(timeout=2, stop_after=3)]
        others = [n.payload for n in shared.notifies(timeout=0.5)]
        woken = list(relay.notifies(timeout=0.5))
    assert len(mine) == 3 and mine[2] == str(ids[3])
    assert len(others) == 1 and json.loads(others[0])["id"] == str(ids[4])
    assert len(woken) == 4  # one per completion (each wrote a delivery); none for the fail
    schema = TaskSchema()
    for task_id, payload in zip((ids[1], ids[0]), mine[:2], strict=True):
        announced = task_from_notify(json.loads(payload))
        assert schema.dump(announced) == schema.dump(read_task(db, task_id))
        assert announced.status in ("completed", "failed")


def test_insert_writes_row_and_trail_under_the_cap(db):
    made = []
    with db.engine.connect() as conn:
        for assigned, max_active in ((True, 0), (False, 0), (True, 3), (True, 3)):
            task = lifecycle.insert_task(conn, owner="carol", endpoint="/e", data={"a": [1]},
                                         priority=2, queue="cuda:0", max_active=max_active,
                                         assigned=assigned)
            made.append(task and task.id)
        conn.commit()
    assert made[3] is None  # the cap of 3 active tasks refused the fourth
    with db.session() as s:
        rows = {t.id: t for t in s.scalars(select(Task))}
        trails = {i: [(e.type, e.details) for e in s.scalars(
            select(TaskEvent).where(TaskEvent.task_id == i).order_by(TaskEvent.id))]
            for i in made if i}
    first = rows[made[0]]
    assert (first.owner, first.endpoint, first.data, first.status, first.priority,
            first.queue, first.progress, first.retry_count, first.attempts) == \
        ("carol", "/e", {"a": [1]}, "assigned", 2, "cuda:0", 0, 0, 0)
    assert first.assigned_at is not None and first.created_at == first.updated_at
    assigned = [("created", {"endpoint": "/e", "queue": "cuda:0"}),
                ("assigned", {"queue": "cuda:0"})]
    assert trails[made[0]] == assigned
    assert rows[made[1]].status == "created" and trails[made[1]] == assigned[:1]


def test_claims_commit_without_waiting_for_the_wal_and_completions_wait(db):
    """A claim's commit is lazy (soft state, see ``CLAIM_SQL``); a completion's waits for
    its WAL to be written, and the claim leaves the session's setting as it found it.
    Measured on this backend's own WAL writes (PostgreSQL 18's per-backend I/O stats)."""
    tasks = [_task(db, k=i).id for i in range(10)]
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("SET synchronous_commit = on")

        def wal_writes() -> int:
            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
            return conn.exec_driver_sql(
                "SELECT coalesce(sum(writes), 0) FROM pg_stat_get_backend_io("
                "pg_backend_pid()) WHERE object = 'wal'").scalar_one()

        before = wal_writes()
        for task_id in tasks:
            assert lifecycle.claim(conn, task_id, worker="w", device="cpu").attempts == 1
        claimed = wal_writes()
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
        for task_id in tasks:
            assert lifecycle.complete(conn, task_id, {"text": ""}, attempt=1, notify=False)
        completed = wal_writes()
    assert claimed - before <= 2
    assert completed - claimed >= len(tasks)


def test_a_keyed_insert_claims_its_key_in_the_same_statement(db):
    """The task is made only with its key's claim; a held key makes nothing
    (``KeyHeld``); an expired one is replaced; a cap that refuses claims nothing."""
    def key(name: str, expired=None) -> dict:
        return {"key": name, "key_endpoint": "/e", "fingerprint": "f" * 64,
                "expired": expired or utcnow() - KEY_LIFETIME}

    def insert(conn, name, max_active=0, **kw):
        return lifecycle.insert_task(conn, owner="dana", endpoint="/e", data={},
                                     queue="q", assigned=True, max_active=max_active,
                                     key=key(name, **kw))

    def claims() -> dict:
        with db.session() as s:
            return {k.key: k.task_id for k in s.scalars(select(Key))}

    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        first = insert(conn, "k-1")
        assert claims() == {"k-1": first.id}
        with pytest.raises(KeyHeld):
            insert(conn, "k-1")
        # the claim counts as expired (its time is before the cut-off): replaced
        replaced = insert(conn, "k-1", expired=utcnow() + timedelta(seconds=1))
        assert claims() == {"k-1": replaced.id}
        assert insert(conn, "k-2", max_active=2) is None  # two active: refused
    assert claims() == {"k-1": replaced.id}
    with db.session() as s:
        assert {t.id for t in s.scalars(select(Task))} == {first.id, replaced.id}
