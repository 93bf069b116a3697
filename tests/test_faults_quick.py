"""Quick regressions for what the fault scripts (``make faults``) found.

A task waiting in a busy queue is not lost: the sweeper must see its message. With
``BROKER_KEY_PREFIX`` set (as every test session and shared deployment has it) kombu's
passive ``queue_declare`` asked Redis ``EXISTS`` without the prefix, every queue looked
empty, and every task queued longer than ``ASSIGNED_GRACE`` was re-run, then failed after
``MAX_RETRIES`` sweeps (``bench/faults/worker_kill.py`` saw its backlog re-run).
"""

from contextlib import contextmanager
from datetime import timedelta

import redis
from sqlalchemy import update

from core import dispatch, lifecycle
from core.models import Task, utcnow
from workers import sweeper

SLEEP = "/diagnostics/sleep"
QUEUE = "faults-nobody"  # no worker consumes it: the message stays queued


def test_task_waiting_in_a_prefixed_queue_is_not_declared_lost(app, db, settings):
    celery = app.extensions["hark"]["celery"]
    assert settings.broker_key_prefix, "the session runs with a key prefix"
    with db.transaction() as s:
        task = lifecycle.create_task(s, owner="alice", endpoint=SLEEP, data={"seconds": 0},
                                     queue=QUEUE)
    try:
        assert dispatch.republish(db, celery, task)  # queued, and marked assigned
        with db.transaction() as s:  # waiting far longer than ASSIGNED_GRACE
            s.execute(update(Task).where(Task.id == task.id)
                      .values(updated_at=utcnow() - timedelta(minutes=10)))
        report = sweeper.sweep(db, celery, settings)
        with db.session() as s:
            row = s.query(Task).filter_by(id=task.id).one()
        assert (report.not_finished, row.status, row.retry_count) == (0, "assigned", 0)
    finally:
        client = redis.Redis.from_url(settings.broker_url)
        for key in client.scan_iter(match=f"{settings.broker_key_prefix}{QUEUE}*"):
            client.delete(key)


class _Unreachable:
    """A Celery app whose broker cannot be reached."""

    @contextmanager
    def connection_for_read(self):
        raise ConnectionRefusedError("broker down")
        yield


def test_queue_that_cannot_be_counted_is_not_empty():
    """A broker outage during a sweep must not declare every waiting task lost."""
    assert sweeper._EmptyQueues(_Unreachable())("cpu") is False
