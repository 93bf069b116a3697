"""The /analyze pipeline: fetch the media, check its length, transcribe it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from workers import context
from workers.media import fetch_media
from workers.media_copy import keep_fetched_copy
from workers.runner import TaskContext


def transcribe_media(ctx: TaskContext, progress_scale: float = 1.0) -> dict[str, Any]:
    """Fetch the task's media and transcribe it with the task's options. Media longer
    than ``MAX_MEDIA_SECONDS`` fails the task (checked while decoding: no extra probe)."""
    from workers.asr.transcribe import run_transcription
    from workers.asr.window_pool import upcoming

    settings = context.settings()
    # announced while fetching and decoding: batches wait for this task's windows
    with upcoming(), tempfile.TemporaryDirectory(prefix="hark-task-") as folder:
        path = fetch_media(context.database(), ctx.data["media"], Path(folder), settings)
        keep_fetched_copy(context.database(), ctx.task_id, ctx.owner, ctx.data["media"], path)
        ctx.check_cancelled()
        return run_transcription(str(path), dict(ctx.data.get("options") or {}), ctx.device,
                                 progress=lambda pct: ctx.progress(pct * progress_scale),
                                 max_seconds=settings.max_media_seconds)


def run_analyze_task(ctx: TaskContext) -> dict[str, Any]:
    return transcribe_media(ctx)
