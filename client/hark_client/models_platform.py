"""What ``/tasks/<id>/events``, ``/tasks/<id>/stream``, ``/me``, ``/models`` and
``/workers`` return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .models import Task, _Model


@dataclass
class TaskEvent(_Model):
    """One entry of a task's audit trail: a status change or a notable step."""

    type: str | None = None
    at: datetime | None = None
    details: Any = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TaskEvent:
        event = super().from_dict(data)
        from .models import parse_datetime

        event.at = parse_datetime(event.at)
        return event


@dataclass
class TaskUpdate:
    """One item of ``client.tasks.stream(id)``.

    ``kind`` is ``"task_event"`` (``event`` holds the audit-trail entry, ``id`` its id),
    ``"progress"`` (the status, progress or error changed) or ``"end"``, the last one:
    the task completed or failed (or ``status == "deleted"``). ``task`` is the task as
    last seen: its id, status, progress and error, and everything else when ``polled``
    (read from ``GET /tasks/<id>`` because the stream was not available).
    """

    kind: str
    task: Task
    event: TaskEvent | None = None
    id: str | None = None
    polled: bool = False
    raw: Any = field(default=None, repr=False)

    @property
    def status(self) -> str | None:
        return self.task.status

    @property
    def progress(self) -> int | None:
        return self.task.progress

    @property
    def error(self) -> dict[str, Any] | None:
        return self.task.error


@dataclass
class Account(_Model):
    """``GET /me``: who the API key belongs to and the limits that apply to it."""

    owner: str | None = None
    name: str | None = None
    admin: bool | None = None
    limits: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class ModelCatalog(_Model):
    """``GET /models``: the transcription models this platform can run, and its default."""

    models: list[str] | None = None
    default: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Worker(_Model):
    """An online worker (``GET /workers``, admin keys only)."""

    id: str
    node: str | None = None
    host: str | None = None
    pid: int | None = None
    role: str | None = None
    device: str | None = None
    queues: list[str] | None = None
    models: list[str] | None = None
    current_task: str | None = None
    tasks: dict[str, int] | None = None
    started_at: datetime | None = None
    last_seen: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Worker:
        worker = super().from_dict(data)
        from .models import parse_datetime

        worker.last_seen = parse_datetime(worker.last_seen)
        return worker
