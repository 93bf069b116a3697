"""Running one task: claim it, run its pipeline, store the outcome.

Plain functions with no Celery in them, so they can be tested directly.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from core import lifecycle
from core.config import Settings
from core.db import Database
from core.logs import task_context
from workers import context, events
from workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)
T = TypeVar("T")


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


class _Moves:
    """Runs a task's status moves (claim, then complete or fail) for :func:`execute`.

    On PostgreSQL each of those moves is a single statement (the move, its trail entry
    and the completion notify: :mod:`core.worker_moves`), so they run in autocommit
    (no BEGIN and COMMIT round trips) on one pooled connection kept from the claim to
    the end of the task (one checkout and liveness ping instead of two). If that
    connection died while the task ran (a database restart), the move is made again on
    a fresh one. Elsewhere each move is an ordinary transaction.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None

    def __enter__(self) -> _Moves:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run(self, move: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``move(session_or_connection, *args, **kwargs)``, committed."""
        if self.db.dialect != "postgresql":
            with self.db.transaction() as session:
                return move(session, *args, **kwargs)
        for last in (False, True):
            if self._conn is None:
                assert self.db.engine is not None
                self._conn = self.db.engine.connect()
                self._conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                return move(self._conn, *args, **kwargs)
            except DBAPIError as exc:
                self.close()
                if last or not exc.connection_invalidated:
                    raise
                log.warning("database connection lost during the task; reconnecting")
        raise AssertionError("unreachable")


def execute(
    db: Database,
    task_id: str | uuid.UUID,
    *,
    worker: str,
    device: str,
    torch_device: str,
    settings: Settings,
) -> str:
    """Run one task to its end. Returns the outcome: completed, failed, skipped, cancelled."""
    task_uuid = uuid.UUID(str(task_id))
    with _Moves(db) as moves:
        task = moves.run(lifecycle.claim, task_uuid, worker=worker, device=device)
        if task is None:
            log.info("task %s not claimable (running elsewhere, finished or deleted)",
                     task_uuid)
            return "skipped"
        with task_context(task_uuid, task.owner):
            return _execute_claimed(db, moves, task, worker=worker, device=device,
                                    torch_device=torch_device, settings=settings)


def _execute_claimed(db: Database, moves: _Moves, task, *, worker: str, device: str,
                     torch_device: str, settings: Settings) -> str:
    task_uuid = task.id
    log.info("task %s started: %s on %s", task_uuid, task.endpoint, device)
    events.emit(task_uuid, events.STARTED, subscribed=task.subscribed, data=task.data)
    presence = context.presence()
    if presence is not None:
        presence.task_started(task_uuid)
    started, outcome = time.perf_counter(), "crashed"
    try:
        outcome = _run(db, moves, task, worker=worker, torch_device=torch_device,
                       settings=settings)
    finally:
        if presence is not None:
            presence.task_finished(outcome, time.perf_counter() - started)
    return outcome


def _run(db: Database, moves: _Moves, task, *, worker: str, torch_device: str,
         settings: Settings) -> str:
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
            if isinstance(exc, PipelineError | ValueError):
                log.info("task %s failed: %s", task_uuid, exc)
            else:
                log.exception("task %s crashed", task_uuid)
            failed = moves.run(lifecycle.fail, task_uuid, describe_error(exc), attempt)
            if failed is None:
                return "cancelled"
            events.emit(task_uuid, events.FAILED, subscribed=failed.subscribed,
                        data=failed.data)
            return "failed"
    done = moves.run(lifecycle.complete, task_uuid, result, attempt)
    if done is None:
        log.info("task %s finished but was deleted meanwhile; result dropped", task_uuid)
        return "cancelled"
    log.info("task %s completed", task_uuid)
    events.emit(task_uuid, events.COMPLETED, subscribed=done.subscribed, data=done.data)
    return "completed"
