"""Every task status change, in one place.

Each move is one conditional ``UPDATE`` that states what its caller saw (the legal
source statuses; a worker's attempt; the sweeper's judgement of staleness), so an
illegal or racing move changes nothing: the database, not the caller, decides. The hot
moves (claim, complete, fail, declare lost) are fixed statements that also write their
trail entry and webhook deliveries (:mod:`core.task_sql`); finishing moves notify
waiting API requests (``NOTIFY``, delivered on commit).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.orm import Session

from core import task_sql
from core.models import Task, TaskEvent, utcnow
from core.status import IllegalTransition, TaskStatus, check_transition, sources_for
from core.task_sql import MovedTask

# For soft-state writes (heartbeats): this transaction's commit does not wait for the WAL.
LAZY_COMMIT = text(f"SELECT {task_sql.LAZY_COMMIT}")


def create_task(
    session: Session,
    *,
    owner: str,
    endpoint: str,
    data: Any,
    priority: int = 0,
    queue: str | None = None,
) -> Task:
    """:func:`insert_task` inside an ORM session; returns the row attached to the session.
    The caller commits before enqueueing it."""
    task = insert_task(session.connection(), owner=owner, endpoint=endpoint, data=data,
                       priority=priority, queue=queue)
    return session.scalars(select(Task).where(Task.id == task.id)).one()


def insert_task(
    conn: Connection,
    *,
    owner: str,
    endpoint: str,
    data: Any,
    priority: int = 0,
    queue: str | None = None,
    max_active: int = 0,
    assigned: bool = False,
    task_id: uuid.UUID | None = None,
    key: dict[str, Any] | None = None,
) -> Task | None:
    """The API's fast path for :func:`create_task`: the row and its trail as Core INSERTs
    (no ORM unit of work; one fixed statement, :func:`core.task_sql.insert`).
    Returns a detached :class:`Task`, or None when ``max_active`` is set and the owner
    already has that many active tasks (read from the trigger-kept counters inside the
    same statement: a soft cap, concurrent submissions may pass it by a few).

    ``assigned``: the row is written already ``assigned`` to ``queue``, its trail
    ``created`` then ``assigned``: the caller publishes its message next (see
    :func:`core.dispatch.submit`). ``key``: claim an idempotency key in the same
    statement (:func:`core.task_sql.insert`; :class:`core.task_sql.KeyHeld` if it is
    held)."""
    now = utcnow()
    status = TaskStatus.ASSIGNED if assigned else TaskStatus.CREATED
    values = dict(id=task_id or uuid.uuid4(), owner=owner, endpoint=endpoint, data=data,
                  status=status.value, priority=priority, queue=queue, progress=0,
                  retry_count=0, attempts=0, created_at=now, updated_at=now,
                  assigned_at=now if assigned else None)
    return Task(**values) if task_sql.insert(conn, values, max_active=max_active, key=key) \
        else None


def record(session: Session, task_id: uuid.UUID, kind: str, details: Any = None,
           at: datetime | None = None) -> None:
    """Append a step to the task's audit trail (``GET /tasks/<id>/events``)."""
    session.add(TaskEvent(task_id=task_id, type=kind, at=at or utcnow(), details=details))


def _move(
    session: Session,
    task_id: uuid.UUID,
    target: TaskStatus,
    *,
    only_from: list[str] | None = None,
    event: str | None = None,
    details: Any = None,
    **values: Any,
) -> Task | None:
    """Move ``task_id`` to ``target`` if its status allows it (``only_from``, else every
    legal source); return the row or None. The API's moves (assign, retry); the workers'
    and the sweeper's are fixed statements (:mod:`core.task_sql`)."""
    sources = only_from if only_from is not None else sources_for(target)
    now = utcnow()
    conditions = [Task.id == task_id, Task.status.in_(sources)]
    stmt = (
        update(Task)
        .where(*conditions)
        .values(status=target.value, updated_at=now, **values)
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    task = session.execute(stmt).scalar_one_or_none()
    if task is not None:
        if callable(details):
            details = details(task)
        record(session, task_id, event or target.value, details, at=now)
    return task


def mark_assigned(session: Session, task_id: uuid.UUID, queue: str) -> Task | None:
    """The task's message is on ``queue``. No-op if a worker already started it."""
    return _move(
        session,
        task_id,
        TaskStatus.ASSIGNED,
        only_from=[TaskStatus.CREATED.value],
        details={"queue": queue},
        queue=queue,
        assigned_at=utcnow(),
    )


def claim(conn: Session | Connection, task_id: uuid.UUID, *, worker: str, device: str,
          token: uuid.UUID | None = None) -> MovedTask | None:
    """A worker starts the task (:func:`core.task_sql.claim`). None if it is running
    elsewhere, finished or deleted."""
    return task_sql.claim(_connection(conn), task_id, worker=worker, device=device,
                          now=utcnow(), token=token)


def heartbeat(session: Session, task_id: uuid.UUID, progress: int | None = None,
              attempt: int | None = None, milestone: bool = False) -> bool:
    """Refresh a running task's heartbeat. False if this run no longer owns it (deleted,
    or declared lost and re-run elsewhere). ``milestone`` also records the progress."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0, min(100, int(progress)))
    conditions = [Task.id == task_id, Task.status == TaskStatus.RUNNING.value]
    if attempt is not None:
        conditions.append(Task.attempts == attempt)
    stmt = (
        update(Task)
        .where(*conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    # Soft state, like the claim: the commit need not wait for its WAL flush.
    session.execute(LAZY_COMMIT)
    alive = session.execute(stmt).rowcount == 1
    if alive and milestone and progress is not None:
        record(session, task_id, "progress", {"progress": values["progress"]})
    return alive


def complete(conn: Session | Connection, task_id: uuid.UUID, result: Any, *, attempt: int,
             notify: bool | str = True) -> MovedTask | None:
    """Store the result of run ``attempt``. None unless that run still owns the task
    (deleted, or declared lost and re-run). ``notify`` wakes API requests waiting on the
    task: on the shared channel, or on the one the task message names (the waiting API
    process's own); workers pass False for deferred submissions."""
    return task_sql.complete(_connection(conn), task_id, result, attempt, utcnow(), notify)


def fail(conn: Session | Connection, task_id: uuid.UUID, error: dict[str, Any], *,
         attempt: int, notify: bool | str = True) -> MovedTask | None:
    """Record run ``attempt``'s failure (``{"type", "message"}``); as :func:`complete`."""
    return task_sql.fail(_connection(conn), task_id, error, attempt, utcnow(), notify)


def declare_lost(conn: Session | Connection, task: Task, *, stale_before: datetime,
                 reason: str, give_up: bool) -> MovedTask | None:
    """The sweeper's move of ``task`` as it read it (status, attempt) when its worker or
    message vanished: ``not_finished``, or ``failed`` with ``give_up``; None if the task
    moved or beat since (:func:`core.task_sql.declare_lost`)."""
    return task_sql.declare_lost(_connection(conn), task.id, seen=task.status,
                                 attempt=task.attempts, stale_before=stale_before,
                                 reason=reason, give_up=give_up, now=utcnow())


def _connection(conn: Session | Connection) -> Connection:
    return conn if isinstance(conn, Connection) else conn.connection()


def reset_for_retry(session: Session, task: Task) -> Task:
    """``failed``/``not_finished`` back to ``created``, as a user's retry asks. A user's
    retry starts a new series of runs: ``retry_count`` (the automatic re-runs after lost
    workers or messages, bounded by ``MAX_RETRIES``) starts again from 0."""
    check_transition(task.status, TaskStatus.CREATED)
    moved = _move(
        session,
        task.id,
        TaskStatus.CREATED,
        only_from=[task.status],
        event="retried",
        details={"from": task.status},
        result=None,
        error=None,
        progress=0,
        completed_at=None,
        retry_count=0,
    )
    if moved is None:  # changed under us
        raise IllegalTransition(task.status, TaskStatus.CREATED.value)
    return moved


def delete_task(session: Session | Connection, task_id: uuid.UUID) -> None:
    """Remove the task; its events and uploaded media go with it (foreign keys)."""
    session.execute(delete(Task).where(Task.id == task_id))


def stale_running(session: Session, before: datetime, limit: int = 500) -> list[Task]:
    stmt = (
        select(Task)
        .where(Task.status == TaskStatus.RUNNING.value, Task.heartbeat_at < before)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def pending_since(session: Session, status: TaskStatus, before: datetime, limit: int = 500):
    """Tasks in ``status`` whose last change is older than ``before``."""
    stmt = (
        select(Task)
        .where(Task.status == status.value, Task.updated_at < before)
        .order_by(Task.seq)
        .limit(limit)
    )
    return list(session.scalars(stmt))
