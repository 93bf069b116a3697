"""``GET /tasks/<id>/stream``: the task's events, status and progress as Server-Sent Events.

Each stream waits on :class:`core.task_watch.TaskWatch` (woken by the database's
notifications for that task only) and reads what changed. ``id:`` is the ``task_events``
row id, so a client reconnecting with ``Last-Event-ID`` is sent the events it missed.
The stream ends with an ``end`` event once the task is completed or failed (or gone),
and after ``STREAM_SECONDS`` (the client reconnects).

Threads: a stream occupies a gunicorn thread while open, so each process holds at most
``MAX_STREAMS`` of them (429 past that) and ``gunicorn.conf.py`` gives every process
``WEB_THREADS + MAX_STREAMS`` threads: full streams never take the request threads.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from app.auth import current_principal
from app.errors import APIError, not_found
from app.openapi import doc
from app.signed_links import signed_ok
from core.db import Database
from core.models import TaskEvent
from core.status import FINISHED
from core.task_reads import read_task
from core.task_watch import TaskWatch

bp = Blueprint("task_stream", __name__, url_prefix="/tasks")
PING_SECONDS = 15.0
POLL_SECONDS = 1.0  # re-read interval while the listener is not connected; the fallback
FALLBACK_SECONDS = 30.0  # re-read even without a wake-up (a lost watcher row)
MIN_READ_GAP = 0.25  # progress is read at most this often per stream
_slots_lock = threading.Lock()


def _hark(name: str) -> Any:
    return current_app.extensions["hark"][name]


def task_watch() -> TaskWatch:
    """The app's fan-out (created on first use, one per app and process)."""
    hark = current_app.extensions["hark"]
    with _slots_lock:
        if "task_watch" not in hark:
            settings = current_app.config["HARK"]
            hark["task_watch"] = TaskWatch(hark["db"], hark["waiter"],
                                           settings.stream_seconds + 60)
            hark["stream_slots"] = threading.BoundedSemaphore(max(1, settings.max_streams))
        return hark["task_watch"]


def sse(data: Any, event: str | None = None, event_id: int | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return "\n".join(lines) + "\n\n"


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise APIError(400, "validation_error", "Last-Event-ID must be an event id",
                       {"Last-Event-ID": ["not an integer"]}) from None
    return max(0, value)


def _events_after(db: Database, task_id: uuid.UUID, after: int) -> list[TaskEvent]:
    with db.session() as session:
        return list(session.scalars(
            select(TaskEvent).where(TaskEvent.task_id == task_id, TaskEvent.id > after)
            .order_by(TaskEvent.id).limit(500)))


def _state(task) -> dict[str, Any]:
    return {"status": task.status, "progress": 100 if task.status == "completed"
            else task.progress or 0, "error": task.error}


def stream_task(db: Database, watch: TaskWatch, task_id: uuid.UUID, owner: str,
                after: int, seconds: float) -> Iterator[str]:
    """The stream's text: replayed events after ``after``, then changes as they come."""
    deadline = time.monotonic() + seconds
    yield "retry: 2000\n\n"
    with watch.watch(task_id) as wake:
        interval = FALLBACK_SECONDS if watch.listening else POLL_SECONDS
        sent, next_ping = None, time.monotonic() + PING_SECONDS
        while True:
            wake.clear()
            task = read_task(db, task_id, owner=owner)  # first: its events are then all in
            for event in [] if task is None else _events_after(db, task_id, after):
                after = event.id
                yield sse({"type": event.type, "at": event.at.isoformat(),
                           "details": event.details}, "task_event", event.id)
            if task is None:
                yield sse({"status": "deleted", "progress": 0, "error": None}, "end")
                return
            state = _state(task)
            if state != sent:
                sent = state
                yield sse(state, "progress")
            if task.status in FINISHED:
                yield sse(state, "end")
                return
            if time.monotonic() > deadline:
                return  # the client reconnects with Last-Event-ID
            next_read = time.monotonic() + interval
            while True:  # pings keep proxies open and find gone clients; no read for them
                now = time.monotonic()
                if wake.wait(max(0.0, min(next_ping, next_read) - now)):
                    time.sleep(MIN_READ_GAP)  # throttle: a burst of changes, one read
                    break
                if time.monotonic() >= next_read:
                    break
                next_ping = time.monotonic() + PING_SECONDS
                yield ": ping\n\n"


@bp.get("/<uuid:task_id>/stream")
@signed_ok
@doc("Live status, progress and events (Server-Sent Events)", tag="Tasks",
     responses={200: "text/event-stream", 429: None})
def stream(task_id: uuid.UUID):
    """``text/event-stream``: ``task_event`` (``id:`` = the event's id; send
    ``Last-Event-ID`` to resume), ``progress`` (status, progress, error on change) and a
    final ``end``. At most ``MAX_STREAMS`` per API process (429 past that). Takes the
    key header or a signed ``?token=`` from ``/links``."""
    owner = current_principal().owner
    after = _last_event_id()
    db = _hark("db")
    if read_task(db, task_id, owner=owner) is None:
        raise not_found("task")
    watch = task_watch()
    slots: threading.BoundedSemaphore = _hark("stream_slots")
    if not slots.acquire(blocking=False):
        raise APIError(429, "too_many_streams", "this API process holds its maximum of "
                       "live streams; poll GET /tasks/<id> or retry later",
                       headers={"Retry-After": "5"})
    seconds = current_app.config["HARK"].stream_seconds
    response = Response(stream_task(db, watch, task_id, owner, after, seconds),
                        content_type="text/event-stream; charset=utf-8")
    response.call_on_close(slots.release)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
