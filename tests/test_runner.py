"""The worker's task runner in-process: status moves, reconnects, heartbeats, cancellation."""

from __future__ import annotations

import dataclasses
import threading
import time

from sqlalchemy import select, text

from core import lifecycle
from core.models import Task, TaskEvent
from workers import pipelines, runner
from workers.heartbeat import Heartbeat
from workers.status_moves import StatusMoves


def _submit(db, data: dict) -> Task:
    with db.engine.connect() as conn:
        task = lifecycle.insert_task(conn, owner="alice", endpoint="/diagnostics/sleep",
                                     data=data, queue="cpu", assigned=True)
        conn.commit()
    return task


def _run(db, settings, task: Task, moves: StatusMoves | None = None) -> str:
    return runner.execute(db, task.id, worker="w1@test", device="cpu", torch_device="cpu",
                          settings=settings, moves=moves)


def _row(db, task: Task) -> Task:
    with db.session() as session:
        return session.scalars(select(Task).where(Task.id == task.id)).one()


def _trail(db, task: Task) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(TaskEvent.type).where(TaskEvent.task_id == task.id)
                                    .order_by(TaskEvent.id)))


def test_runs_a_task_to_completion(db, settings):
    task = _submit(db, {"seconds": 0})
    assert _run(db, settings, task) == "completed"
    row = _row(db, task)
    assert (row.status, row.attempts, row.progress, row.worker) == ("completed", 1, 100,
                                                                     "w1@test")
    assert row.result["slept"] == 0
    assert _trail(db, task) == ["created", "assigned", "started", "completed"]
    assert _run(db, settings, task) == "skipped"  # a second delivery changes nothing


def test_failure_is_stored(db, settings):
    task = _submit(db, {"seconds": 0, "fail": True})
    assert _run(db, settings, task) == "failed"
    row = _row(db, task)
    assert row.status == "failed" and row.error["type"] == "DiagnosticFailure"
    assert _trail(db, task)[-1] == "failed"


def test_completes_after_its_connection_died_during_the_task(db, settings, monkeypatch,
                                                             caplog):
    """A database restart while the task runs: the result is stored on a new connection."""

    def cut_connections(ctx):
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() "
                              "AND pid <> pg_backend_pid()"))
            conn.commit()
        return {"ok": True}

    monkeypatch.setitem(pipelines.PIPELINES, "/diagnostics/sleep", cut_connections)
    task = _submit(db, {"seconds": 0})
    assert _run(db, settings, task) == "completed"
    assert _row(db, task).result == {"ok": True}
    assert "retrying" in caplog.text  # the claim's connection was the one cut


def test_deleting_a_running_task_cancels_it(db, settings):
    settings = dataclasses.replace(settings, heartbeat_interval=0.1)
    task = _submit(db, {"seconds": 30})
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(_run(db, settings, task)))
    thread.start()
    deadline = time.monotonic() + 10
    while _row(db, task).status != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    with db.transaction() as session:
        lifecycle.delete_task(session, task.id)
    thread.join(10)
    assert outcome == ["cancelled"]


def test_heartbeat_beats_while_running_and_never_after(db):
    task = _submit(db, {"seconds": 0})
    with db.transaction() as session:
        claimed = lifecycle.claim(session, task.id, worker="w", device="cpu")

    def heartbeat_at():
        return _row(db, task).heartbeat_at

    first = heartbeat_at()
    with Heartbeat(db, task.id, 0.1, attempt=claimed.attempts) as beat:
        time.sleep(0.35)
    assert heartbeat_at() > first and not beat.cancelled.is_set()
    stopped = heartbeat_at()
    time.sleep(0.3)
    assert heartbeat_at() == stopped
    with Heartbeat(db, task.id, 0.1, attempt=claimed.attempts + 1) as stale:
        time.sleep(0.3)  # another run owns the task now
    assert stale.cancelled.is_set()


def test_kept_connection_serves_task_after_task_and_survives_a_restart(db, settings,
                                                                        caplog):
    """Workers keep one connection for status moves; a database restart between two
    tasks costs a reconnect, not the task."""
    with StatusMoves(db) as moves:
        first, second, third = (_submit(db, {"seconds": 0}) for _ in range(3))
        assert _run(db, settings, first, moves) == "completed"
        backend = moves.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        assert _run(db, settings, second, moves) == "completed"
        assert moves.connection().exec_driver_sql(
            "SELECT pg_backend_pid()").scalar() == backend  # the same connection
        assert "retrying" not in caplog.text
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            conn.commit()
        assert _run(db, settings, third, moves) == "completed"
        assert "retrying" in caplog.text
    assert [_row(db, t).status for t in (first, second, third)] == ["completed"] * 3
