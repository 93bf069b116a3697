"""Running one task: claim it, run its pipeline, store the outcome.

Plain functions with no Celery in them, so they can be tested directly.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from core.config import Settings
from core.db import Database
from core.logs import task_context
from workers import context
from workers.heartbeat import Heartbeat
from workers.status_moves import CompletionStep, StatusMoves

log = logging.getLogger(__name__)


class TaskCancelled(Exception):
    """The task was deleted while it ran."""


class PipelineError(Exception):
    """An expected failure whose message is safe and useful to show the task's owner."""


@dataclass
class TaskContext:
    """What a pipeline sees: its input, where it runs, and how to report progress."""

    task_id: uuid.UUID
    endpoint: str
    data: Any
    owner: str
    device: str
    worker: str
    heartbeat: Heartbeat | None = None
    extra: dict = field(default_factory=dict)
    # Run in the completion's transaction, only if the completion applies (see
    # :meth:`on_complete`).
    completion_steps: list[CompletionStep] = field(default_factory=list)

    def on_complete(self, step: CompletionStep) -> None:
        """Write ``step(connection)`` with the completion: committed together, or not at
        all when this run no longer owns the task (deleted, or declared lost)."""
        self.completion_steps.append(step)

    def progress(self, percent: float) -> None:
        """Report progress (0-100); raises :class:`TaskCancelled` if the task was deleted."""
        if self.heartbeat is not None:
            self.heartbeat.report(int(percent))
        self.check_cancelled()

    def check_cancelled(self) -> None:
        if self.heartbeat is not None and self.heartbeat.cancelled.is_set():
            raise TaskCancelled(str(self.task_id))


def describe_error(exc: BaseException) -> dict[str, str]:
    """The error stored on a failed task: its kind and a readable message, no traceback."""
    message = str(exc) or exc.__class__.__name__
    return {"type": exc.__class__.__name__, "message": message[:2000]}


def execute(
    db: Database,
    task_id: str | uuid.UUID,
    *,
    worker: str,
    device: str,
    torch_device: str,
    settings: Settings,
    moves: StatusMoves | None = None,
    notify: bool | str = True,
) -> str:
    """Run one task to its end. Returns the outcome: completed, failed, skipped, cancelled.

    ``moves``: the process's :class:`StatusMoves`, whose connection outlives the task
    (workers pass one); by default one is opened for this task and closed after it.
    ``notify``: announce the end to waiting API requests: True on the shared channel, a
    channel name (the waiting API process's), or False (deferred tasks)."""
    task_uuid = uuid.UUID(str(task_id))
    with nullcontext(moves) if moves is not None else StatusMoves(db) as moves:
        task = moves.claim(task_uuid, worker=worker, device=device)
        if task is None:
            log.info("task %s not claimable (running elsewhere, finished or deleted)",
                     task_uuid)
            return "skipped"
        with task_context(task_uuid, task.owner):
            return _execute_claimed(db, moves, task, worker=worker, device=device,
                                    torch_device=torch_device, settings=settings,
                                    notify=notify)


def _execute_claimed(db: Database, moves: StatusMoves, task, *, worker: str, device: str,
                     torch_device: str, settings: Settings, notify: bool | str) -> str:
    task_uuid = task.id
    log.info("task %s started: %s on %s", task_uuid, task.endpoint, device)
    presence = context.presence()
    if presence is not None:
        presence.task_started(task_uuid)
    started, outcome = time.perf_counter(), "crashed"
    try:
        outcome = _run(db, moves, task, worker=worker, torch_device=torch_device,
                       settings=settings, notify=notify)
    finally:
        elapsed = time.perf_counter() - started
        if presence is not None:
            presence.task_finished(task_uuid, outcome, elapsed)
    if outcome == "completed":
        log.info("task %s completed in %.3fs", task_uuid, elapsed)
    return outcome


def _run(db: Database, moves: StatusMoves, task, *, worker: str, torch_device: str,
         settings: Settings, notify: bool | str) -> str:
    from workers.pipelines import get_pipeline

    task_uuid = task.id
    attempt = task.attempts
    with Heartbeat(db, task_uuid, settings.heartbeat_interval, attempt=attempt) as beat:
        task_context = TaskContext(
            task_id=task_uuid,
            endpoint=task.endpoint,
            data=task.data,
            owner=task.owner,
            device=torch_device,
            worker=worker,
            heartbeat=beat,
        )
        try:
            result = get_pipeline(task.endpoint)(task_context)
        except TaskCancelled:
            log.info("task %s cancelled while running", task_uuid)
            return "cancelled"
        except Exception as exc:
            return _failed(moves, task_uuid, attempt, exc, notify)
    try:
        done = moves.complete(task_uuid, result, attempt, notify=notify,
                              steps=task_context.completion_steps)
    except PipelineError as exc:  # a completion step refused (e.g. collection deleted)
        return _failed(moves, task_uuid, attempt, exc, notify)
    if done is None:
        log.info("task %s finished but was deleted or taken away meanwhile; result dropped",
                 task_uuid)
        return "cancelled"
    return "completed"


def _failed(moves: StatusMoves, task_uuid: uuid.UUID, attempt: int, exc: Exception,
            notify: bool | str) -> str:
    if isinstance(exc, PipelineError | ValueError):
        log.info("task %s failed: %s", task_uuid, exc)
    else:
        log.exception("task %s crashed", task_uuid)
    if moves.fail(task_uuid, describe_error(exc), attempt, notify=notify) is None:
        return "cancelled"
    return "failed"
