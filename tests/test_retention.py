"""Retention: finished tasks and stored media expire; active tasks are never touched."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update

from core import media_store
from core.config import Settings
from core.db import Database
from core.models import MediaBlob, MediaChunk, Task, TaskCount, TaskEvent, utcnow
from core.models_collections import Collection, CollectionMedia, Segment
from core.retention import RETENTION_TASK, purge_expired
from core.status import TaskStatus

DAY = timedelta(days=1)


def add_blob(db: Database, *, age: timedelta = timedelta(0), owner: str = "alice",
             size: int = 3000) -> uuid.UUID:
    """An upload of ``size`` bytes stored ``age`` ago (three chunks at most)."""
    upload = media_store.Upload(file=io.BytesIO(b"x" * size), owner=owner, size=size)
    with db.engine.begin() as conn:
        media_store.store(conn, upload)
        conn.execute(update(MediaBlob).where(MediaBlob.id == upload.blob_id)
                     .values(created_at=utcnow() - age))
    return upload.blob_id


def add_task(db: Database, status: str, *, age: timedelta = timedelta(0), owner: str = "alice",
             blob: uuid.UUID | None = None, endpoint: str = "/analyze") -> uuid.UUID:
    """A task in ``status`` created ``age`` (plus a minute) ago and, if finished, finished
    ``age`` ago, with two events."""
    now = utcnow()
    finished = now - age if status in ("completed", "failed") else None
    task_id = uuid.uuid4()
    media = {"blob_id": str(blob), "filename": "a.wav"} if blob else {"url": "https://x/a"}
    with db.transaction() as session:
        session.execute(insert(Task), [dict(
            id=task_id, owner=owner, endpoint=endpoint, data={"media": media}, status=status,
            result={"text": "hi"} if status == "completed" else None,
            error={"type": "X", "message": "no"} if status == "failed" else None,
            progress=0, priority=0, retry_count=0, attempts=1,
            created_at=now - age - timedelta(minutes=1), updated_at=finished or now,
            completed_at=finished)])
        session.execute(insert(TaskEvent), [
            dict(task_id=task_id, type="created", at=now - age),
            dict(task_id=task_id, type=status, at=now - age)])
    return task_id


def task_ids(db: Database) -> set[uuid.UUID]:
    with db.session() as session:
        return set(session.scalars(select(Task.id)))


def count(db: Database, model) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def blob_ids(db: Database) -> set[uuid.UUID]:
    with db.session() as session:
        return set(session.scalars(select(MediaBlob.id)))


@pytest.fixture()
def keep_30_days(settings: Settings) -> Settings:
    return replace(settings, result_retention_days=30)


def test_expired_finished_tasks_go_with_their_events_and_media(db, keep_30_days):
    old_blob, active_blob, fresh_blob = add_blob(db, age=40 * DAY), add_blob(db, age=40 * DAY), \
        add_blob(db)
    add_task(db, "failed", age=45 * DAY)
    add_task(db, "completed", age=31 * DAY, blob=old_blob)
    # Old but not finished: never touched, nor the upload it will read.
    active = {add_task(db, status, age=60 * DAY, blob=active_blob if status == "running" else None)
              for status in ("created", "assigned", "running", "not_finished")}
    fresh = {add_task(db, "completed", age=29 * DAY, blob=fresh_blob),
             add_task(db, "failed", age=DAY), add_task(db, "completed")}

    assert purge_expired(db, keep_30_days) == {"tasks": 2, "media": 1}

    assert task_ids(db) == active | fresh
    with db.session() as session:
        assert set(session.scalars(select(TaskEvent.task_id))) == active | fresh
    assert blob_ids(db) == {active_blob, fresh_blob}
    with db.session() as session:
        assert set(session.scalars(select(MediaChunk.blob_id))) == {active_blob, fresh_blob}
    assert purge_expired(db, keep_30_days) == {"tasks": 0, "media": 0}


def test_indexed_segments_survive_their_task(db, keep_30_days):
    task_id = add_task(db, "completed", age=31 * DAY, endpoint="/index")
    with db.transaction() as session:
        collection = Collection(owner="alice", collection_id="talks", name="Talks")
        session.add(collection)
        session.flush()
        media = CollectionMedia(collection_pk=collection.id, media_id="keynote",
                                task_id=task_id, segment_count=1)
        session.add(media)
        session.flush()
        session.add(Segment(media_pk=media.id, collection_pk=collection.id, idx=0, start=0.0,
                            end=1.0, text="hello", embedding=b"\0" * 1536))

    assert purge_expired(db, keep_30_days)["tasks"] == 1

    assert task_ids(db) == set()
    assert count(db, CollectionMedia) == 1 and count(db, Segment) == 1


def test_counts_match_the_listing_after_a_purge(client, auth, db, keep_30_days):
    for status in TaskStatus:
        add_task(db, status.value, age=50 * DAY)
    for status in ("completed", "failed"):
        for _ in range(3):
            add_task(db, status, age=40 * DAY)
    add_task(db, "completed", age=40 * DAY, owner="bob")
    for status in TaskStatus:
        add_task(db, status.value, age=DAY)

    assert purge_expired(db, keep_30_days)["tasks"] == 9

    counts = client.get("/tasks/count", headers=auth).get_json()
    for status in TaskStatus:
        listed = client.get(f"/tasks?status={status.value}&per_page=100",
                            headers=auth).get_json()["tasks"]
        assert counts[status.value] == len(listed), status
    assert counts["total"] == len(client.get("/tasks?per_page=100", headers=auth)
                                  .get_json()["tasks"]) == 10
    assert counts["completed"] == counts["failed"] == 1
    with db.session() as session:  # bob's counters went down too
        assert session.scalar(select(func.sum(TaskCount.n))
                              .where(TaskCount.owner == "bob")) == 0


def test_batches_cover_more_rows_than_one_batch(db, keep_30_days):
    kept = set()
    for i in range(23):
        add_task(db, "completed" if i % 2 else "failed", age=(60 - i) * DAY,
                 blob=add_blob(db, age=61 * DAY) if i % 3 == 0 else None)
        if i % 5 == 0:  # kept rows between the expired ones, across batch boundaries
            kept.add(add_task(db, "running", age=(60 - i) * DAY))
    kept.add(add_task(db, "completed", age=DAY))

    assert purge_expired(db, keep_30_days, batch_size=4) == {"tasks": 23, "media": 8}

    assert task_ids(db) == kept
    assert count(db, MediaBlob) == count(db, MediaChunk) == 0


def test_media_expiry_deletes_uploads_and_keeps_the_tasks(client, auth, db, settings,
                                                          tmp_path):
    from workers.media import MediaFetchError, fetch_media
    from workers.runner import describe_error

    expire_media = replace(settings, media_retention_hours=24)
    blobs = {name: add_blob(db, age=timedelta(hours=hours)) for name, hours in
             [("done", 30), ("failed", 48), ("active", 100), ("orphan", 25), ("fresh", 23)]}
    done = add_task(db, "completed", age=timedelta(hours=29), blob=blobs["done"])
    failed = add_task(db, "failed", age=timedelta(hours=47), blob=blobs["failed"])
    active = add_task(db, "not_finished", age=timedelta(hours=99), blob=blobs["active"])

    assert purge_expired(db, expire_media) == {"tasks": 0, "media": 3}

    assert task_ids(db) == {done, failed, active}
    assert blob_ids(db) == {blobs["active"], blobs["fresh"]}
    task = client.get(f"/tasks/{done}", headers=auth).get_json()
    assert task["status"] == "completed" and task["result"] == {"text": "hi"}
    assert client.get(f"/tasks/{done}/transcript", headers=auth).status_code == 200

    # A retry of a task whose upload expired is accepted; its run fails with a clear error.
    assert client.post(f"/tasks/{failed}/retry", headers=auth).status_code == 200
    with db.session() as session:
        media = session.scalar(select(Task.data).where(Task.id == failed))["media"]
    with pytest.raises(MediaFetchError) as caught:
        fetch_media(db, media, tmp_path, expire_media)
    assert describe_error(caught.value) == {
        "type": "MediaFetchError", "message": "the uploaded media is no longer stored"}


def test_media_batches_skip_uploads_in_use(db, settings):
    in_use = set()
    for i in range(9):
        blob = add_blob(db, age=timedelta(hours=50 + i))
        if i % 3 == 0:
            add_task(db, "assigned", blob=blob)
            in_use.add(blob)

    assert purge_expired(db, replace(settings, media_retention_hours=24),
                         batch_size=2) == {"tasks": 0, "media": 6}
    assert blob_ids(db) == in_use


def test_nothing_expires_when_retention_is_zero(db, settings):
    assert settings.result_retention_days == settings.media_retention_hours == 0
    task = add_task(db, "completed", age=5000 * DAY, blob=add_blob(db, age=5000 * DAY))
    assert purge_expired(db, settings) == {"tasks": 0, "media": 0}
    assert task_ids(db) == {task} and count(db, MediaBlob) == 1


def test_deleting_a_task_deletes_its_media(client, auth, db):
    blob = add_blob(db)
    task = add_task(db, "completed", blob=blob)
    other = add_blob(db)
    assert client.delete(f"/tasks/{task}", headers=auth).status_code == 200
    assert blob_ids(db) == {other}
    with db.session() as session:
        assert set(session.scalars(select(MediaChunk.blob_id))) == {other}


def test_cli_purges(app, db, keep_30_days, monkeypatch):
    add_task(db, "completed", age=31 * DAY)
    refused = app.test_cli_runner().invoke(args=["retention", "purge"])
    assert refused.exit_code != 0 and "RESULT_RETENTION_DAYS" in refused.output
    monkeypatch.setitem(app.config, "HARK", keep_30_days)
    result = app.test_cli_runner().invoke(args=["retention", "purge", "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    assert "deleted 1 tasks and 0 media" in result.output
    assert task_ids(db) == set()


def test_a_purge_skips_while_another_runs(db, keep_30_days):
    """Concurrent purges (beat and the CLI): the second skips instead of racing."""
    from sqlalchemy import text

    from core.retention import _ADVISORY_LOCK

    add_task(db, "completed", age=31 * DAY)
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK})
        try:
            assert purge_expired(db, keep_30_days) == {"tasks": 0, "media": 0}
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK})
    assert purge_expired(db, keep_30_days) == {"tasks": 1, "media": 0}


def test_beat_schedules_retention_only_when_configured(tmp_path):
    from core.celery_config import beat_schedule, celery_config
    from workers.celery_app import make_worker_celery

    base = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    assert "retention" not in beat_schedule(base)
    assert "retention" not in celery_config(base)["beat_schedule"]
    for configured in (replace(base, result_retention_days=7, retention_interval=600),
                       replace(base, media_retention_hours=12, retention_interval=600)):
        entry = celery_config(configured)["beat_schedule"]["retention"]
        assert entry == {"task": RETENTION_TASK, "schedule": 600,
                         "options": {"queue": "maintenance", "expires": 600}}
    celery = make_worker_celery(base)
    celery.loader.import_default_modules()
    assert RETENTION_TASK == "hark.retention" and RETENTION_TASK in celery.tasks



def test_celery_task_calls_the_purge(db, keep_30_days, monkeypatch):
    from workers import context
    from workers.tasks import retention_task

    monkeypatch.setattr(context, "_settings", keep_30_days)
    monkeypatch.setattr(context, "_database", db)
    add_task(db, "completed", age=31 * DAY)
    assert retention_task.name == "hark.retention"
    assert retention_task() == {"tasks": 1, "media": 0}
    assert task_ids(db) == set()
