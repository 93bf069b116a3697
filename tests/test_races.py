"""Races between the sweeper, workers, deletions and database faults, interleaved
deterministically (a held lock, an injected pause, a step taken between two others).

Each test fails on a design where the move does not re-check what its caller saw, or
where a side effect commits apart from its move.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import func, select, update

from bench.speech import WEATHER, make_speech_clip
from core import lifecycle
from core.models import MediaBlob, MediaChunk, Task, utcnow
from core.models_collections import CollectionMedia, Segment
from tests.support import pg_admin_url
from workers import indexing, runner, sweeper
from workers.status_moves import StatusMoves

SLEEP = "/diagnostics/sleep"


def _task(db, endpoint=SLEEP, data=None, queue="race-nobody-consumes") -> Task:
    with db.engine.connect() as conn:
        task = lifecycle.insert_task(conn, owner="alice", endpoint=endpoint,
                                     data=data or {"seconds": 0}, queue=queue, assigned=True)
        conn.commit()
    return task


def _row(db, task_id) -> Task:
    with db.session() as s:
        return s.scalars(select(Task).where(Task.id == task_id)).one()


def _age(db, task_id, seconds: float) -> None:
    past = utcnow() - timedelta(seconds=seconds)
    with db.transaction() as s:
        s.execute(update(Task).where(Task.id == task_id)
                  .values(updated_at=past, heartbeat_at=past))


def test_sweeper_does_not_throw_back_a_task_claimed_after_it_looked(app, db, settings):
    """The sweep reads a task as lost (assigned, queue empty, old); a worker claims it
    before the sweep moves it: the move must not apply."""
    task = _task(db)
    _age(db, task.id, 3600)
    lost_before = utcnow() - timedelta(seconds=settings.assigned_grace)
    with db.transaction() as s:
        [seen] = lifecycle.pending_since(s, lifecycle.TaskStatus.ASSIGNED, lost_before)
    with db.transaction() as s:  # the worker's claim lands between the read and the move
        claimed = lifecycle.claim(s, task.id, worker="w@race", device="cpu")
    report = sweeper.SweepReport()
    sweeper._recover(db, app.extensions["hark"]["celery"], settings, seen,
                     "queued message was lost", lost_before, report)
    row = _row(db, task.id)
    assert report.not_finished == 0 and report.failed == 0
    assert (row.status, row.attempts, row.retry_count) == ("running", claimed.attempts, 0)


def test_sweeper_does_not_give_up_a_task_that_beat_after_it_looked(app, db, settings):
    task = _task(db)
    with db.transaction() as s:
        lifecycle.claim(s, task.id, worker="w@race", device="cpu")
    _age(db, task.id, 3600)
    silent_before = utcnow() - timedelta(seconds=settings.heartbeat_timeout)
    with db.transaction() as s:
        [seen] = lifecycle.stale_running(s, silent_before)
        s.execute(update(Task).where(Task.id == task.id).values(retry_count=99))
    seen.retry_count = 99
    with db.transaction() as s:  # the worker was only slow: it beats again
        assert lifecycle.heartbeat(s, task.id, progress=10, attempt=seen.attempts)
    report = sweeper.SweepReport()
    sweeper._recover(db, app.extensions["hark"]["celery"], settings, seen,
                     "worker stopped heartbeating", silent_before, report)
    assert report.failed == 0 and _row(db, task.id).status == "running"


def test_a_retried_finish_recognises_its_own_commit(db, monkeypatch):
    """The completion commits but its answer is lost with the connection: the retried
    move finds the row showing its own outcome and reports success, not a cancellation."""
    task = _task(db)
    moves = StatusMoves(db, pauses=(0, 0))
    claimed = moves.claim(task.id, worker="w@race", device="cpu")
    real_complete = lifecycle.complete
    calls = []

    def complete_then_lose_the_answer(conn, *args, **kwargs):
        calls.append(1)
        moved = real_complete(conn, *args, **kwargs)  # committed (autocommit)
        if len(calls) == 1:
            conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        return moved

    monkeypatch.setattr(lifecycle, "complete", complete_then_lose_the_answer)
    done = moves.complete(task.id, {"ok": True}, claimed.attempts)
    moves.close()
    assert len(calls) == 2 and done is not None and done.status == "completed"
    assert _row(db, task.id).result == {"ok": True}


def test_a_retried_claim_recognises_its_own_commit(db, monkeypatch):
    task = _task(db)
    real_claim = lifecycle.claim
    calls = []

    def claim_then_lose_the_answer(conn, *args, **kwargs):
        calls.append(1)
        moved = real_claim(conn, *args, **kwargs)
        if len(calls) == 1:
            conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        return moved

    monkeypatch.setattr(lifecycle, "claim", claim_then_lose_the_answer)
    with StatusMoves(db, pauses=(0, 0)) as moves:
        claimed = moves.claim(task.id, worker="w@race", device="cpu")
    assert len(calls) == 2 and claimed is not None and claimed.attempts == 1
    assert _row(db, task.id).status == "running"


def test_moves_wait_out_a_database_that_refuses_connections(db, database_url, settings):
    """The move's connection is cut and the database refuses new ones for a while: the
    move is retried in place (the run is not repeated) and lands once it is back."""
    task = _task(db)
    name = database_url.rsplit("/", 1)[1]
    admin = psycopg.connect(pg_admin_url(), autocommit=True)

    def pauses():
        yield 0  # the first retry finds connections refused
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        yield 0

    try:
        moves = StatusMoves(db, pauses=_Pauses(pauses))
        claimed = moves.claim(task.id, worker="w@race", device="cpu")
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE datname = '{name}'")
        done = moves.complete(task.id, {"ok": 1}, claimed.attempts)
        moves.close()
    finally:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
    assert done is not None and _row(db, task.id).status == "completed"


class _Pauses:
    """An iterable of pauses whose iteration runs a generator anew each time."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return self.make()


def test_index_writes_nothing_for_a_task_deleted_while_it_ran(app, client, auth, db, settings,
                                                              monkeypatch):
    client.post("/collections", headers=auth, json={"collection_id": "talks"})
    task = _task(db, endpoint="/index", data={
        "collection": "talks", "media_id": "m1", "reindex_if_exists": False,
        "media": {"url": "http://x/a.mp3"}, "options": {}})

    def transcribe_then_delete(ctx, _scale):
        assert client.delete(f"/tasks/{ctx.task_id}", headers=auth).status_code == 200
        return {"text": "Trains leave at nine.", "language": "en", "duration": 2.0,
                "model": "tiny.en",
                "segments": [{"id": 0, "start": 0.0, "end": 2.0, "text": "Trains leave."}]}

    monkeypatch.setattr(indexing, "transcribe_media", transcribe_then_delete)
    monkeypatch.setattr(indexing.context, "database", lambda: db)
    fast = dataclasses.replace(settings, heartbeat_interval=60)
    outcome = runner.execute(db, task.id, worker="w@race", device="cpu", torch_device="cpu",
                             settings=fast)
    assert outcome == "cancelled"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CollectionMedia)) == 0
        assert s.scalar(select(func.count()).select_from(Segment)) == 0


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_speech_clip(tmp_path_factory.mktemp("speech") / "weather.wav", WEATHER)


@pytest.fixture()
def capped(app, monkeypatch):
    settings = app.config["HARK"]
    monkeypatch.setitem(app.config, "HARK", dataclasses.replace(settings, max_active_tasks=1))
    return app.test_client()


def test_a_refused_upload_leaves_no_blob(capped, auth, db, clip):
    parked = {"queue": "race-nobody-consumes"}
    with open(clip, "rb") as fh:
        first = capped.post("/analyze?defer=true", headers=auth,
                            data={**parked, "file": (fh, "w.wav")})
    assert first.status_code == 202, first.get_json()
    with open(clip, "rb") as fh:
        refused = capped.post("/analyze?defer=true", headers=auth,
                              data={**parked, "file": (fh, "w.wav")})
    assert refused.status_code == 429
    with db.session() as s:
        blobs = list(s.scalars(select(MediaBlob)))
        chunks = s.scalar(select(func.count()).select_from(MediaChunk))
    assert [b.task_id for b in blobs] == [uuid.UUID(first.get_json()["task_id"])]
    assert chunks >= 1
    assert capped.delete(f"/tasks/{first.get_json()['task_id']}",
                         headers=auth).status_code == 200
    with db.session() as s:  # the task's media went with it
        assert s.scalar(select(func.count()).select_from(MediaChunk)) == 0


def test_a_submission_whose_task_insert_fails_leaves_no_blob(client, auth, db, clip):
    """The upload is stored, then the task's INSERT fails (here: a trigger raises, as any
    database error could): nothing of the upload may remain."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql("""
            CREATE FUNCTION race_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused for the test'; END $$;
            CREATE TRIGGER race_refuse BEFORE INSERT ON tasks FOR EACH ROW
            WHEN (NEW.queue = 'race-refused') EXECUTE FUNCTION race_refuse();""")
    try:
        with open(clip, "rb") as fh:
            failed = client.post("/analyze?defer=true", headers=auth,
                                 data={"queue": "race-refused", "file": (fh, "w.wav")})
    finally:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER race_refuse ON tasks; "
                                 "DROP FUNCTION race_refuse();")
    assert failed.status_code >= 500 and "refused for the test" not in failed.get_data(True)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MediaBlob)) == 0
        assert s.scalar(select(func.count()).select_from(MediaChunk)) == 0
