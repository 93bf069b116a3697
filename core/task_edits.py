"""Corrections kept with a transcription task: speaker names and segment texts.

Stored apart from the task's result (``task_edits``, one row per task, gone with the
task), applied on every read: the transcript downloads and the page. For ``/index`` tasks
the passages their collection stored are rewritten in the edit's transaction, then a
device worker re-embeds them (:func:`request_reembed`), so search finds the corrected
words.
"""

from __future__ import annotations

import copy
import logging
import uuid
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import utcnow
from core.models_collections import CollectionMedia, Segment
from core.models_edits import TaskEdits

log = logging.getLogger(__name__)

REEMBED_TASK = "hark.reembed_segments"


def load(session: Session, task_id: uuid.UUID) -> dict[str, Any]:
    row = session.get(TaskEdits, task_id)
    return {"speaker_names": dict(row.speaker_names or {}) if row else {},
            "segments": dict(row.segments or {}) if row else {}}


def save(session: Session, task_id: uuid.UUID, speaker_names: dict[str, str],
         segments: dict[str, str]) -> dict[str, Any]:
    """Merge new edits into the task's (an empty name drops it); returns them all."""
    row = session.get(TaskEdits, task_id, with_for_update=True)
    if row is None:
        row = TaskEdits(task_id=task_id, speaker_names={}, segments={})
        session.add(row)
    names = dict(row.speaker_names or {})
    for label, name in speaker_names.items():
        if name.strip():
            names[label] = name.strip()
        else:
            names.pop(label, None)
    texts = {**(row.segments or {}), **segments}
    row.speaker_names, row.segments, row.updated_at = names, texts, utcnow()
    return {"speaker_names": names, "segments": texts}


def apply(result: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the corrected segment texts (and its ``text`` rebuilt from them),
    ``speaker_name`` on each segment whose speaker has one, and ``speaker_names``."""
    if not edits["segments"] and not edits["speaker_names"]:
        return result
    fixed = copy.deepcopy(result)
    segments = fixed.get("segments") or []
    for index, text in edits["segments"].items():
        if 0 <= int(index) < len(segments):
            segments[int(index)]["text"] = " " + text.strip()
            segments[int(index)].pop("words", None)  # their timings no longer match
    for segment in segments:
        name = edits["speaker_names"].get(str(segment.get("speaker")))
        if name:
            segment["speaker_name"] = name
    if edits["segments"]:
        fixed["text"] = "".join(str(s.get("text", "")) for s in segments).strip()
    if edits["speaker_names"]:
        fixed["speaker_names"] = edits["speaker_names"]
    return fixed


def update_passages(session: Session, task_id: uuid.UUID, segments: list[dict]) -> int:
    """Rewrite the text of the passages an ``/index`` task stored from the corrected
    ``segments`` (each passage: the segments within its span). Their vectors are those
    of the old words until :func:`request_reembed`'s pass. Returns the passages changed."""
    rows = session.scalars(select(Segment).join(CollectionMedia,
                                                CollectionMedia.id == Segment.media_pk)
                           .where(CollectionMedia.task_id == task_id)).all()
    changed = 0
    for passage in rows:
        inside = [s for s in segments if s["start"] >= passage.start - 1e-3
                  and s["end"] <= passage.end + 1e-3]
        text = " ".join(str(s.get("text", "")).strip() for s in inside).strip()
        if inside and text != passage.text:
            passage.text = text
            changed += 1
    return changed


def request_reembed(celery_app: Celery, task_id: uuid.UUID, queue: str) -> bool:
    """After the edit's commit: ask a worker on ``queue`` (the task's device queue, whose
    workers have the embedding model) to re-embed the task's passages. False (logged) if
    the broker refused: the text is corrected, its vector is the old words' until the
    next correction of that task."""
    try:
        celery_app.send_task(REEMBED_TASK, args=[str(task_id)], queue=queue, retry=True,
                             retry_policy={"max_retries": 2, "interval_start": 0,
                                           "interval_step": 0.2, "interval_max": 0.5})
    except Exception as exc:
        log.warning("could not ask for the re-embedding of task %s: %s", task_id, exc)
        return False
    return True
