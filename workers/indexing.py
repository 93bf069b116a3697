"""The /index pipeline: transcribe, cut the transcript into passages, embed, store.

Transcription is the /analyze pipeline's (``transcribe_media``); passages are Whisper
segments merged up to ~30 s or ~60 words, each embedded with all-MiniLM-L6-v2 and stored
with its times in ``segments``. The media row and its segments are written in the
transaction of the task's completion (:meth:`~workers.runner.TaskContext.on_complete`):
a run that was deleted or declared lost meanwhile writes nothing. That transaction also
re-checks that the collection still exists and that the media id is free (or replaces
the old one when ``reindex_if_exists`` was asked for).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from core import collections_store as store
from core.db import Database
from workers import context
from workers.analyze import transcribe_media
from workers.runner import PipelineError, TaskContext

MAX_PASSAGE_SECONDS = 30.0
MAX_PASSAGE_WORDS = 60
TRANSCRIBE_SHARE = 0.8  # of the progress bar


class CollectionGone(PipelineError):
    """The collection does not exist (or was deleted while the media was transcribed)."""


class MediaAlreadyIndexed(PipelineError):
    """The media id is already indexed in the collection and reindexing was not asked for."""


def merge_segments(
    segments: Iterable[dict[str, Any]],
    max_seconds: float = MAX_PASSAGE_SECONDS,
    max_words: int = MAX_PASSAGE_WORDS,
) -> list[dict[str, Any]]:
    """Join consecutive Whisper segments into passages ``{"start", "end", "text"}``.

    A passage grows while it stays within ``max_seconds`` and ``max_words``; a single
    segment longer than that is kept whole. Blank segments are dropped.
    """
    passages: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for segment in segments:
        text = " ".join(str(segment.get("text") or "").split())
        if not text:
            continue
        start, end = float(segment["start"]), float(segment["end"])
        words = len(text.split())
        if current is not None and (end - current["start"] <= max_seconds
                                    and current["words"] + words <= max_words):
            current["end"] = max(current["end"], end)
            current["text"] += " " + text
            current["words"] += words
            continue
        current = {"start": start, "end": end, "text": text, "words": words}
        passages.append(current)
    return [{"start": round(p["start"], 3), "end": round(p["end"], 3), "text": p["text"]}
            for p in passages]


def _checked(call, *args):
    try:
        return call(*args)
    except store.CollectionNotFound:
        raise CollectionGone("collection not found (it may have been deleted)") from None
    except store.MediaAlreadyIndexed as exc:
        raise MediaAlreadyIndexed(f"media {exc} is already indexed in this collection; "
                                  "send reindex_if_exists=true to replace it") from None


def run_index_task(ctx: TaskContext) -> dict[str, Any]:
    from workers.embedding import embed

    data = ctx.data
    collection_id, media_id = data["collection"], data["media_id"]
    replace = bool(data.get("reindex_if_exists"))
    task_id = uuid.UUID(str(ctx.task_id))
    db = context.database()
    with db.session() as session:  # fail before the expensive part if it cannot be stored
        _checked(store.check_can_index, session, ctx.owner, collection_id, media_id, replace,
                 task_id)
    transcript = transcribe_media(ctx, TRANSCRIBE_SHARE)
    passages = merge_segments(transcript.get("segments") or [])
    ctx.progress(100 * TRANSCRIBE_SHARE)
    vectors = embed([p["text"] for p in passages], device=ctx.device)
    ctx.progress(95)
    source = data.get("media") or {}

    def save(conn: Connection) -> None:
        session = Session(bind=conn)
        _checked(lambda: store.save_media(
            session, owner=ctx.owner, collection_id=collection_id, media_id=media_id,
            replace=replace, passages=passages, vectors=vectors,
            task_id=task_id, duration=transcript.get("duration"),
            language=transcript.get("language"), model=transcript.get("model"),
            filename=source.get("filename"), url=source.get("url")))
        session.flush()

    ctx.on_complete(save)
    return {
        "collection": collection_id,
        "media_id": media_id,
        "segments": len(passages),
        "duration": transcript.get("duration"),
        "language": transcript.get("language"),
        "model": transcript.get("model"),
        "transcript": transcript,
    }



def reembed_passages(db: Database, task_id: uuid.UUID, device: str = "cpu") -> int:
    """Embed again the passages ``task_id`` stored (their text was corrected with
    ``PATCH /tasks/<id>``) and store the vectors of the texts still there. Returns the
    passages written; 0 when the task indexed nothing (or its media went away)."""
    from workers.embedding import embed

    with db.session() as session:
        passages = store.task_passages(session, task_id)
    if not passages:
        return 0
    vectors = embed([text for _, _, text in passages], device=device)
    by_collection: dict[int, list[tuple[int, str, Any]]] = {}
    for (seg_id, collection_pk, text), vector in zip(passages, vectors, strict=True):
        by_collection.setdefault(collection_pk, []).append((seg_id, text, vector))
    written = 0
    with db.transaction() as session:
        for collection_pk, updates in sorted(by_collection.items()):
            written += store.replace_vectors(session, collection_pk, updates)
    return written
