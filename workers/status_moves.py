"""Where a worker's status moves run: one autocommit connection, kept from task to task.

A database error during a move retries the move (for about a minute, reconnecting), never
the run. A retried move may find that its first try did commit (the answer was lost with
the connection): it recognises its own commit from the row (a claim by its token, a
finish by the status and attempt it was to write) instead of taking it for someone
else's move.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core import lifecycle, task_sql
from core.db import Database
from core.status import TaskStatus
from core.task_sql import MovedTask

log = logging.getLogger(__name__)
T = TypeVar("T")
# Pauses between tries of a move while the database is unreachable (about a minute).
RETRY_PAUSES = (0, 0.5, 1, 2, 4, 8, 15, 30)
CompletionStep = Callable[[Connection], None]


class StatusMoves:
    """Runs a task's status moves (claim, then complete or fail) for
    :func:`workers.runner.execute`.

    Each move is a single statement (:mod:`core.task_sql`), so it runs in autocommit on
    one connection that a worker process keeps from task to task
    (:func:`workers.context.status_moves`). A completion with steps (``/index`` stores
    its segments) runs those steps and the move in one transaction instead.
    """

    def __init__(self, db: Database, pauses: Iterable[float] = RETRY_PAUSES) -> None:
        self.db = db
        self.pauses = pauses  # iterated anew by each move
        self._conn: Connection | None = None

    def __enter__(self) -> StatusMoves:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def claim(self, task_id: uuid.UUID, *, worker: str, device: str) -> MovedTask | None:
        """Start the task; None if it runs elsewhere, finished or was deleted."""
        token = uuid.uuid4()

        def mine() -> MovedTask | None:
            found = task_sql.read(self.connection(), task_id)
            if found is not None and found[0].status == TaskStatus.RUNNING and \
                    found[1] == token:
                return found[0]
            return None

        return self._retried(lambda conn: lifecycle.claim(
            conn, task_id, worker=worker, device=device, token=token), mine)

    def complete(self, task_id: uuid.UUID, result: Any, attempt: int, *,
                 notify: bool | str = True,
                 steps: Iterable[CompletionStep] = ()) -> MovedTask | None:
        """Store run ``attempt``'s result; None if that run no longer owns the task.
        ``steps`` run in the move's transaction, after it (its row lock held), and only
        if it applied: what they write commits with the completion or not at all."""
        steps = list(steps)

        def move(conn: Connection) -> MovedTask | None:
            return lifecycle.complete(conn, task_id, result, attempt=attempt, notify=notify)

        if not steps:
            return self._retried(move, self._finished(task_id, attempt, TaskStatus.COMPLETED))

        def with_steps(_conn: Connection) -> MovedTask | None:
            assert self.db.engine is not None
            with self.db.engine.begin() as conn:
                done = move(conn)
                if done is not None:
                    for step in steps:
                        step(conn)
                return done

        return self._retried(with_steps,
                             self._finished(task_id, attempt, TaskStatus.COMPLETED))

    def fail(self, task_id: uuid.UUID, error: dict[str, Any], attempt: int, *,
             notify: bool | str = True) -> MovedTask | None:
        """Record run ``attempt``'s failure; None if that run no longer owns the task."""
        return self._retried(
            lambda conn: lifecycle.fail(conn, task_id, error, attempt=attempt, notify=notify),
            self._finished(task_id, attempt, TaskStatus.FAILED))

    def _finished(self, task_id: uuid.UUID, attempt: int,
                  target: TaskStatus) -> Callable[[], MovedTask | None]:
        def mine() -> MovedTask | None:
            found = task_sql.read(self.connection(), task_id)
            if found is not None and found[0].status == target and \
                    found[0].attempts == attempt:
                return found[0]
            return None
        return mine

    def _retried(self, move: Callable[[Connection], T | None],
                 mine: Callable[[], T | None]) -> T | None:
        """``move``, tried again while the database is unreachable. When a try failed
        after sending, a later try that changes nothing asks ``mine`` whether the row
        already shows this move (its own earlier commit)."""
        uncertain = False
        for pause in (*self.pauses, None):
            try:
                moved = move(self.connection())
                if moved is None and uncertain:
                    return mine()
                return moved
            except (DBAPIError, PoolTimeout) as exc:
                self.close()
                if pause is None or not _transient(exc):
                    raise
                uncertain = True
                log.warning("database unreachable during a status move (%s); retrying in "
                            "%gs", type(exc).__name__, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def connection(self) -> Connection:
        if self._conn is None:
            assert self.db.engine is not None
            self._conn = self.db.engine.connect()
            self._conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn


def _transient(exc: Exception) -> bool:
    """A lost or refused connection (worth another try), not a bad statement."""
    if isinstance(exc, PoolTimeout):
        return True
    return bool(getattr(exc, "connection_invalidated", False)) or \
        type(exc).__name__ == "OperationalError"
