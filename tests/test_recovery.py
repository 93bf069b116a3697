"""The sweeper: lost publishes, dead workers, lost messages, and long tasks run once."""

import signal
import time
from datetime import timedelta

import psutil
from sqlalchemy import update

from core import dispatch, lifecycle
from core.models import Task, utcnow
from tests.support import start_worker, wait_for
from workers import sweeper

SLEEP = "/diagnostics/sleep"


def _row(db, task_id):
    with db.session() as s:
        return s.query(Task).filter_by(id=task_id).one()


def _age(db, task_id, seconds, **columns):
    past = utcnow() - timedelta(seconds=seconds)
    values = {c: past for c in columns} | {"updated_at": past}
    with db.transaction() as s:
        s.execute(update(Task).where(Task.id == task_id).values(**values))


def test_created_task_whose_publish_was_lost_is_published(app, db, settings, worker):
    celery = app.extensions["hark"]["celery"]

    with db.transaction() as s:  # committed, but this "API" died before publishing
        task = lifecycle.create_task(s, owner="alice", endpoint=SLEEP, data={"seconds": 0},
                                     queue="cpu")
    _age(db, task.id, 60)
    report = sweeper.sweep(db, celery, settings)
    assert report.published == 1
    wait_for(lambda: _row(db, task.id).status == "completed", message="completion")


def test_stale_running_task_becomes_not_finished_and_reruns(app, db, settings, worker):
    celery = app.extensions["hark"]["celery"]

    with db.transaction() as s:  # a worker claimed it, then vanished
        task = lifecycle.create_task(s, owner="alice", endpoint=SLEEP, data={"seconds": 0},
                                     queue="cpu")
    with db.transaction() as s:
        lifecycle.claim(s, task.id, worker="ghost@gone", device="cpu")
    _age(db, task.id, 60, heartbeat_at=True)
    report = sweeper.sweep(db, celery, settings)
    assert report.not_finished == 1 and report.published == 1
    done = wait_for(lambda: (r := _row(db, task.id)).status == "completed" and r,
                    message="re-run to complete")
    assert done.retry_count == 1 and done.attempts == 2 and done.worker != "ghost@gone"


def test_gives_up_after_max_retries(app, db, settings):
    celery = app.extensions["hark"]["celery"]

    with db.transaction() as s:
        task = lifecycle.create_task(s, owner="alice", endpoint=SLEEP, data={"seconds": 0})
    with db.transaction() as s:
        lifecycle.claim(s, task.id, worker="ghost", device="cpu")
        s.execute(update(Task).where(Task.id == task.id)
                  .values(retry_count=settings.max_retries))
    _age(db, task.id, 60, heartbeat_at=True)
    report = sweeper.sweep(db, celery, settings)
    assert report.failed == 1
    row = _row(db, task.id)
    assert row.status == "failed" and "gave up" in row.error["message"]


def test_assigned_task_whose_message_was_lost_is_recovered(app, db, settings, worker):
    celery = app.extensions["hark"]["celery"]

    with db.transaction() as s:
        task = lifecycle.create_task(s, owner="alice", endpoint=SLEEP, data={"seconds": 0},
                                     queue="cpu")
    with db.transaction() as s:  # marked assigned, but the broker lost the message
        lifecycle.mark_assigned(s, task.id, "cpu")
    _age(db, task.id, 60)
    report = sweeper.sweep(db, celery, settings)
    assert report.not_finished == 1
    wait_for(lambda: _row(db, task.id).status == "completed", message="recovery")


def test_submission_that_died_before_publishing_is_recovered(app, db, settings, worker,
                                                           monkeypatch):
    celery = app.extensions["hark"]["celery"]

    class Died(BaseException):  # the process ends here: nothing of submit() runs after
        pass

    def die(*_args, **_kwargs):
        raise Died

    monkeypatch.setattr(dispatch, "publish", die)
    try:
        dispatch.submit(db, celery, owner="alice", endpoint=SLEEP, data={"seconds": 0},
                        queue="cpu")
    except Died:
        pass
    monkeypatch.undo()
    with db.session() as s:
        task = s.query(Task).filter_by(owner="alice").one()
    assert task.status == "assigned"  # committed, its message never sent
    _age(db, task.id, 60)
    report = sweeper.sweep(db, celery, settings)
    assert report.not_finished == 1
    wait_for(lambda: _row(db, task.id).status == "completed", message="recovery")


def test_killed_worker_child_task_is_rerun_once(app, client, auth, settings_env, log_dir, db,
                                                settings):
    """kill -9 the pool process running a task: it ends completed exactly once."""
    celery = app.extensions["hark"]["celery"]

    victim = start_worker(settings_env, log_dir, name="victim", WORKER_CONCURRENCY="1",
                          WORKER_QUEUES="victim")
    try:
        task_id = client.post(SLEEP + "?defer=true", json={"seconds": 30, "queue": "victim"},
                              headers=auth).get_json()["task_id"]
        wait_for(lambda: _row(db, task_id).status == "running", message="running")
        children = psutil.Process(victim.pid).children(recursive=True)
        assert children, "no pool process found"
        for child in children:
            child.send_signal(signal.SIGKILL)
        time.sleep(float(settings_env["HEARTBEAT_TIMEOUT"]) + 0.5)
    finally:
        victim.stop()
    sweeper.sweep(db, celery, settings)
    row = _row(db, task_id)
    assert row.status == "not_finished" and row.retry_count == 1
    # Make the rerun quick and send it where the session's worker listens.
    with db.transaction() as s:
        s.execute(update(Task).where(Task.id == row.id).values(data={"seconds": 0}, queue="cpu"))
    rescuer = start_worker(settings_env, log_dir, name="rescuer")
    try:
        dispatch.republish(db, celery, _row(db, task_id))
        done = wait_for(lambda: (r := _row(db, task_id)).status == "completed" and r,
                        message="rerun")
    finally:
        rescuer.stop()
    assert done.attempts == 2 and done.retry_count == 1


def test_long_task_not_run_twice_after_visibility_timeout(client, auth, settings_env, log_dir,
                                                           db):
    """Redis re-delivers unacked messages after the visibility timeout; the claim refuses.

    With VISIBILITY_TIMEOUT=1 workers look for overdue messages every second.
    """
    env = dict(settings_env, VISIBILITY_TIMEOUT="1")
    first = start_worker(env, log_dir, name="vt1", WORKER_CONCURRENCY="1", WORKER_QUEUES="vt")
    second = start_worker(env, log_dir, name="vt2", WORKER_CONCURRENCY="1", WORKER_QUEUES="vt")
    try:
        task_id = client.post(SLEEP + "?defer=true", json={"seconds": 5, "queue": "vt"},
                              headers=auth).get_json()["task_id"]
        done = wait_for(lambda: (r := _row(db, task_id)).status == "completed" and r,
                        timeout=40, message="completion")
    finally:
        first.stop()
        second.stop()
    assert done.attempts == 1
    logs = first.output() + second.output()
    assert f"task {task_id} not claimable" in logs, "the message was never re-delivered"


def test_beat_runs_the_sweeper(app, db, settings_env, log_dir, worker, tmp_path):
    """With beat running, a committed-but-never-published task completes by itself."""
    import sys

    from tests.support import Process, platform_env

    with db.transaction() as s:
        task = lifecycle.create_task(s, owner="alice", endpoint=SLEEP, data={"seconds": 0},
                                     queue="cpu")
    env = platform_env(settings_env, DATA_DIR=str(tmp_path))
    beat = Process([sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat",
                    "--loglevel", "INFO"], env, log_dir / "beat.log")
    try:
        done = wait_for(lambda: (r := _row(db, task.id)).status == "completed" and r,
                        timeout=30, message="beat-driven sweep to publish the task")
    finally:
        beat.stop()
    assert done.attempts == 1 and "Scheduler: Sending due task sweep" in beat.output()
