"""Retention: finished tasks and stored uploads expire (run by Celery beat, or the CLI).

- ``RESULT_RETENTION_DAYS``: a ``completed`` or ``failed`` task whose ``completed_at`` is
  older than this is deleted with its events (foreign key cascade) and its uploaded media.
- ``MEDIA_RETENTION_HOURS``: an uploaded media blob older than this is deleted even when
  its task is kept; a later retry of that task fails with ``MediaFetchError`` ("the
  uploaded media is no longer stored").

``0`` keeps forever. Active tasks (created, assigned, running, not_finished) and the media
they will read are never touched. Work is done in batches, each its own transaction, so a
large backlog never holds locks for long; rows locked by someone else are
skipped (the next pass takes them) and one purge runs at a time. Collections keep their
indexed segments: they do not reference tasks by foreign key.

Plain functions with no Celery or Flask in them, so they can be tested directly.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, tuple_
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import Database
from core.models import ACTIVE_STATUSES, MediaBlob, MediaChunk, Task, utcnow
from core.status import FINISHED

log = logging.getLogger(__name__)

RETENTION_TASK = "hark.retention"
BATCH_SIZE = 1000
CLOCK_MARGIN = timedelta(hours=1)
_ADVISORY_LOCK = 0x48524554  # "HRET"
_FINISHED = sorted(status.value for status in FINISHED)
_BLOB_ID = Task.data[("media", "blob_id")].as_string()


def enabled(settings: Settings) -> bool:
    """Whether any retention is configured (else the beat schedule leaves it out)."""
    return settings.result_retention_days > 0 or settings.media_retention_hours > 0


def purge_expired(db: Database, settings: Settings, now: datetime | None = None,
                  batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Delete what has outlived its retention; returns ``{"tasks": n, "media": m}``."""
    counts = {"tasks": 0, "media": 0}
    if not enabled(settings):
        return counts
    now = now or utcnow()
    with _exclusive(db) as acquired:
        if not acquired:
            log.info("retention: another purge is running; skipped")
            return counts
        if settings.result_retention_days > 0:
            cutoff = now - timedelta(days=settings.result_retention_days)
            tasks, media = purge_finished_tasks(db, cutoff, batch_size)
            counts["tasks"] += tasks
            counts["media"] += media
        if settings.media_retention_hours > 0:
            cutoff = now - timedelta(hours=settings.media_retention_hours)
            counts["media"] += purge_media(db, cutoff, batch_size)
    if counts["tasks"] or counts["media"]:
        log.info("retention: deleted %(tasks)d tasks and %(media)d media", counts)
    return counts


def purge_finished_tasks(db: Database, cutoff: datetime,
                         batch_size: int = BATCH_SIZE) -> tuple[int, int]:
    """Delete finished tasks whose ``completed_at`` is before ``cutoff``, with their events
    and uploads. Returns (tasks, media) deleted.

    The batches walk the primary key (``seq``) upwards and stop at the first task created
    after ``cutoff`` (a task cannot finish before it was created), so a pass costs what it
    deletes, not the size of the table. ``CLOCK_MARGIN`` absorbs clock skew between the
    hosts that stamp ``created_at``; a host whose clock runs further ahead can only delay
    expiry (the row is taken by a later pass), never advance it."""
    with db.session() as session:
        bound = session.scalar(select(Task.seq).where(Task.created_at >= cutoff + CLOCK_MARGIN)
                               .order_by(Task.seq).limit(1))
    tasks = media = 0
    after = 0
    while True:
        doomed = (select(Task.seq)
                  .where(Task.seq > after, Task.status.in_(_FINISHED),
                         Task.completed_at < cutoff)
                  .order_by(Task.seq)
                  .limit(batch_size)
                  .with_for_update(skip_locked=True))
        if bound is not None:
            doomed = doomed.where(Task.seq < bound)
        stmt = (delete(Task)
                .where(Task.seq.in_(doomed.scalar_subquery()), Task.status.in_(_FINISHED),
                       Task.completed_at < cutoff)
                .returning(Task.seq, _BLOB_ID)
                .execution_options(synchronize_session=False))
        with db.transaction() as session:
            rows = session.execute(stmt).all()
            blobs = [uuid.UUID(blob) for _, blob in rows if blob]
            media += _delete_blobs(session, blobs)
        tasks += len(rows)
        if len(rows) < batch_size:
            return tasks, media
        after = max(seq for seq, _ in rows)


def purge_media(db: Database, cutoff: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Delete uploads stored before ``cutoff``, except those an active task will read.
    Kept tasks keep their rows and results; only the media bytes go."""
    with db.session() as session:
        in_use = active_blob_ids(session)
    deleted = 0
    last: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = (select(MediaBlob.created_at, MediaBlob.id)
                 .where(MediaBlob.created_at < cutoff)
                 .order_by(MediaBlob.created_at, MediaBlob.id)
                 .limit(batch_size))
        if last is not None:
            query = query.where(tuple_(MediaBlob.created_at, MediaBlob.id) > last)
        with db.transaction() as session:
            rows = session.execute(query).all()
            deleted += _delete_blobs(session, [blob for _, blob in rows if blob not in in_use])
        if len(rows) < batch_size:
            return deleted
        last = tuple(rows[-1])


def active_blob_ids(session: Session) -> set[uuid.UUID]:
    """Uploads referenced by tasks that have not finished (served by ``ix_tasks_active``)."""
    rows = session.scalars(select(_BLOB_ID).where(Task.status.in_(ACTIVE_STATUSES)))
    return {uuid.UUID(blob) for blob in rows if blob}


def _delete_blobs(session: Session, blob_ids: list[uuid.UUID]) -> int:
    if not blob_ids:
        return 0
    session.execute(delete(MediaChunk).where(MediaChunk.blob_id.in_(blob_ids))
                    .execution_options(synchronize_session=False))
    return session.execute(delete(MediaBlob).where(MediaBlob.id.in_(blob_ids))
                           .execution_options(synchronize_session=False)).rowcount


@contextmanager
def _exclusive(db: Database) -> Iterator[bool]:
    """One purge at a time (a PostgreSQL advisory lock)."""
    with db.engine.connect() as conn:
        acquired = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                     {"k": _ADVISORY_LOCK}).scalar())
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK})
                conn.commit()
