"""Keeping the copy of a URL task's media that the worker fetched.

Stored as a blob like an upload and named in the task's ``data.media.blob_id``, so
``GET /tasks/<id>/media`` plays it without depending on the original URL, a retry
reads it instead of downloading again, and retention and deletion treat it exactly as
an upload (``RESULT_RETENTION_DAYS`` with the task, ``MEDIA_RETENTION_HOURS`` alone).
"""

from __future__ import annotations

import logging
import mimetypes
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from core import media_store
from core.db import Database
from core.models import Task

log = logging.getLogger(__name__)


def keep_fetched_copy(db: Database, task_id: uuid.UUID, owner: str, media: dict[str, Any],
                      path: Path) -> str | None:
    """Store ``path`` as the task's media blob; returns its id (None: not a URL task, or
    the task is gone). Never raises: playback is a nicety, the transcription goes on."""
    if "url" not in media or "blob_id" in media:
        return None
    name = Path(urlsplit(str(media["url"])).path).name or None
    content_type = mimetypes.guess_type(name or "")[0]
    try:
        with db.transaction() as session, open(path, "rb") as stream:
            task = session.scalar(select(Task).where(Task.id == task_id)
                                  .with_for_update())
            if task is None:
                return None
            upload = media_store.Upload(file=stream, owner=owner, size=path.stat().st_size,
                                        filename=media.get("filename") or name,
                                        content_type=content_type)
            media_store.store(session.connection(), upload, task_id)
            data = dict(task.data or {})
            data["media"] = {**(data.get("media") or {}), "blob_id": str(upload.blob_id)}
            task.data = data
            return str(upload.blob_id)
    except Exception:
        log.exception("could not keep the fetched media of task %s", task_id)
        return None
