"""Status transitions: legal moves happen, illegal ones change nothing."""

from datetime import timedelta

import pytest

from core import lifecycle
from core.models import Task, utcnow
from core.status import ALLOWED_TRANSITIONS, IllegalTransition, TaskStatus, check_transition


def _task(db, status="created"):
    with db.transaction() as session:
        task = lifecycle.create_task(session, owner="alice", endpoint="/x", data={})
        session.flush()
        if status != "created":
            task.status = status
    return task


def test_every_status_has_rules():
    assert set(ALLOWED_TRANSITIONS) == set(TaskStatus)
    assert ALLOWED_TRANSITIONS[TaskStatus.COMPLETED] == frozenset()


@pytest.mark.parametrize(
    "current,target",
    [("completed", TaskStatus.RUNNING), ("completed", TaskStatus.CREATED),
     ("running", TaskStatus.CREATED), ("created", TaskStatus.COMPLETED),
     ("assigned", TaskStatus.COMPLETED), ("failed", TaskStatus.RUNNING)],
)
def test_illegal_moves_are_refused(current, target):
    with pytest.raises(IllegalTransition):
        check_transition(current, target)


def test_claim_complete_and_no_second_claim(db):
    task = _task(db)
    with db.transaction() as s:
        assert lifecycle.mark_assigned(s, task.id, "cpu").status == "assigned"
    with db.transaction() as s:
        claimed = lifecycle.claim(s, task.id, worker="w", device="cpu")
    assert claimed.status == "running" and claimed.attempts == 1
    with db.transaction() as s:
        assert lifecycle.claim(s, task.id, worker="w2", device="cpu") is None
    with db.transaction() as s:
        assert lifecycle.complete(s, task.id, {"ok": 1}, attempt=1).status == "completed"
    with db.transaction() as s:
        assert lifecycle.complete(s, task.id, {"ok": 2}, attempt=1) is None
        assert lifecycle.fail(s, task.id, {"type": "X", "message": "m"}, attempt=1) is None
        assert lifecycle.claim(s, task.id, worker="w", device="cpu") is None
    with db.session() as s:
        final = s.get(Task, task.seq)
    assert final.result == {"ok": 1} and final.status == "completed"


def test_mark_assigned_does_not_undo_a_start(db):
    task = _task(db)
    with db.transaction() as s:
        lifecycle.claim(s, task.id, worker="w", device="cpu")
    with db.transaction() as s:
        assert lifecycle.mark_assigned(s, task.id, "cpu") is None


def test_retry_only_from_failed_or_not_finished(db):
    task = _task(db)
    with db.transaction() as s:
        lifecycle.claim(s, task.id, worker="w", device="cpu")
        lifecycle.fail(s, task.id, {"type": "E", "message": "boom"}, attempt=1)
        s.execute(Task.__table__.update().where(Task.id == task.id).values(retry_count=3))
    with db.transaction() as s:
        row = s.get(Task, task.seq)
        retried = lifecycle.reset_for_retry(s, row)
    # A user's retry starts a fresh budget of automatic re-runs.
    assert retried.status == "created" and retried.retry_count == 0 and retried.error is None
    with db.transaction() as s, pytest.raises(IllegalTransition):
        lifecycle.reset_for_retry(s, s.get(Task, task.seq))


def test_heartbeat_reports_deleted_task(db):
    task = _task(db)
    with db.transaction() as s:
        lifecycle.claim(s, task.id, worker="w", device="cpu")
    with db.transaction() as s:
        assert lifecycle.heartbeat(s, task.id, progress=40)
    with db.transaction() as s:
        lifecycle.delete_task(s, task.id)
    with db.transaction() as s:
        assert not lifecycle.heartbeat(s, task.id)


def test_a_lost_run_cannot_finish_a_task_rerun_elsewhere(db):
    """Fencing: after a re-run claims attempt 2, attempt 1's writes change nothing."""
    task = _task(db)
    with db.transaction() as s:
        first = lifecycle.claim(s, task.id, worker="cut-off", device="cpu").attempts
    with db.transaction() as s:
        seen = s.get(Task, task.seq)
        lifecycle.declare_lost(s, seen, stale_before=utcnow() + timedelta(seconds=1),
                               reason="worker stopped heartbeating", give_up=False)
    with db.transaction() as s:  # before its re-run starts, the lost run cannot fail it
        assert lifecycle.fail(s, task.id, {"type": "X", "message": "m"}, attempt=first) is None
        assert lifecycle.complete(s, task.id, {"by": "cut-off"}, attempt=first) is None
    with db.transaction() as s:
        second = lifecycle.claim(s, task.id, worker="rescuer", device="cpu").attempts
    assert (first, second) == (1, 2)
    with db.transaction() as s:  # the cut-off worker comes back
        assert not lifecycle.heartbeat(s, task.id, 50, attempt=first)
        assert lifecycle.complete(s, task.id, {"by": "cut-off"}, attempt=first) is None
        assert lifecycle.fail(s, task.id, {"type": "X", "message": "m"}, attempt=first) is None
    with db.transaction() as s:
        assert lifecycle.heartbeat(s, task.id, 60, attempt=second)
        assert lifecycle.complete(s, task.id, {"by": "rescuer"}, attempt=second).status == \
            "completed"
    with db.session() as s:
        assert s.get(Task, task.seq).result == {"by": "rescuer"}
