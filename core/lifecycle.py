"""Every task status change, in one place.

Each move is one conditional ``UPDATE ... WHERE status IN (<legal sources>)``, so an
illegal or racing move changes nothing: the database, not the caller, decides.
Finishing moves also notify waiters (PostgreSQL ``NOTIFY``, delivered on commit). The
workers' moves (claim, complete, fail) run as fixed statements on PostgreSQL
(:mod:`core.task_sql`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from core import task_sql
from core.models import Task, TaskCount, TaskEvent, utcnow
from core.models_webhooks import Webhook
from core.status import CAPPED, IllegalTransition, TaskStatus, check_transition, sources_for
from core.task_sql import MovedTask

_TASKS = Task.__table__
_EVENTS = TaskEvent.__table__


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
) -> Task | None:
    """The API's fast path for :func:`create_task`: the row and its trail as Core INSERTs
    (no ORM unit of work; one fixed statement on PostgreSQL, :func:`core.task_sql.insert`).
    Returns a detached :class:`Task`, or None when ``max_active`` is set and the owner
    already has that many active tasks (read from the trigger-kept counters inside the
    same statement: a soft cap, concurrent submissions may pass it by a few).

    ``assigned``: the row is written already ``assigned`` to ``queue``, its trail
    ``created`` then ``assigned``: the caller publishes its message next (see
    :func:`core.dispatch.submit`)."""
    now = utcnow()
    status = TaskStatus.ASSIGNED if assigned else TaskStatus.CREATED
    values = dict(id=task_id or uuid.uuid4(), owner=owner, endpoint=endpoint, data=data,
                  status=status.value, priority=priority, queue=queue, progress=0,
                  retry_count=0, attempts=0, created_at=now, updated_at=now,
                  assigned_at=now if assigned else None)
    if conn.dialect.name == "postgresql":
        return Task(**values) if task_sql.insert(conn, values, max_active=max_active) \
            else None
    details = {"endpoint": endpoint, "queue": queue}
    if max_active and conn.scalar(select(active_count(owner))) >= max_active:
        return None
    conn.execute(_TASKS.insert(), values)
    events = [{"task_id": values["id"], "type": "created", "at": now, "details": details}]
    if assigned:
        events.append({"task_id": values["id"], "type": "assigned", "at": now,
                       "details": {"queue": queue}})
    conn.execute(_EVENTS.insert(), events)
    return Task(**values)


def active_count(owner: Any):
    """Scalar subquery: the owner's created, assigned and running tasks (from counters)."""
    return (select(func.coalesce(func.sum(TaskCount.n), 0))
            .where(TaskCount.owner == owner, TaskCount.status.in_([s.value for s in CAPPED]))
            .scalar_subquery())


# Whether the task's owner has an enabled webhook subscription.
_SUBSCRIBED = (select(Webhook.id)
               .where(Webhook.owner == Task.owner, Webhook.enabled.is_(True))
               .exists().label("subscribed"))


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
    attempt: int | None = None,
    event: str | None = None,
    details: Any = None,
    **values: Any,
) -> Task | None:
    """Move ``task_id`` to ``target`` if its status allows it; return the row or None.

    ``attempt`` fences a worker's writes: only the run that claimed attempt N may finish
    it, so a worker cut off from the network cannot complete a task re-run elsewhere.
    The same statement tells whether the owner has webhooks (``task.subscribed``, so
    workers skip the lookup when nobody listens).
    """
    sources = only_from if only_from is not None else sources_for(target)
    now = utcnow()
    conditions = [Task.id == task_id, Task.status.in_(sources)]
    if attempt is not None:
        conditions.append(Task.attempts == attempt)
    stmt = (
        update(Task)
        .where(*conditions)
        .values(status=target.value, updated_at=now, **values)
        .returning(Task, _SUBSCRIBED)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    row = session.execute(stmt).first()
    task = row[0] if row is not None else None
    if task is not None:
        task.subscribed = bool(row[1])
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


def claim(session: Session | Connection, task_id: uuid.UUID, *, worker: str,
          device: str) -> MovedTask | None:
    """A worker starts the task. None if it is running elsewhere, finished or deleted.

    On PostgreSQL (a session, or the worker's autocommit connection) this is one
    statement, :func:`core.task_sql.claim`; the same move elsewhere goes through
    :func:`_move`."""
    now = utcnow()
    conn = _postgres_connection(session)
    if conn is not None:
        return task_sql.claim(conn, task_id, worker=worker, device=device, now=now)
    return _moved(_move(
        session,
        task_id,
        TaskStatus.RUNNING,
        event="started",
        details=lambda t: {"worker": worker, "device": device, "attempt": t.attempts},
        worker=worker,
        device=device,
        started_at=now,
        assigned_at=func.coalesce(Task.assigned_at, now),  # started before it was marked
        heartbeat_at=now,
        progress=0,
        attempts=Task.attempts + 1,
    ))


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
    alive = session.execute(stmt).rowcount == 1
    if alive and milestone and progress is not None:
        record(session, task_id, "progress", {"progress": values["progress"]})
    return alive


def complete(session: Session | Connection, task_id: uuid.UUID, result: Any,
             attempt: int | None = None, notify: bool | str = True) -> MovedTask | None:
    """Store the result. None if the task was deleted or taken away meanwhile.

    ``notify`` wakes API requests waiting on the task (PostgreSQL ``NOTIFY``; SQLite
    waiters poll): on the shared channel, or on the one the task message names (the
    waiting API process's own); workers pass False for deferred submissions."""
    now = utcnow()
    conn = _postgres_connection(session)
    if conn is not None:
        return task_sql.complete(conn, task_id, result, attempt, now, notify)
    return _moved(_move(session, task_id, TaskStatus.COMPLETED, attempt=attempt,
                        result=result, error=None, progress=100, completed_at=now))


def fail(session: Session | Connection, task_id: uuid.UUID, error: dict[str, Any],
         attempt: int | None = None, notify: bool | str = True) -> MovedTask | None:
    """Record a failure with its details (``{"type", "message"}``); ``notify`` as for
    :func:`complete`."""
    now = utcnow()
    conn = _postgres_connection(session)
    if conn is not None:
        return task_sql.fail(conn, task_id, error, attempt, now, notify)
    return _moved(_move(session, task_id, TaskStatus.FAILED, attempt=attempt, error=error,
                        details=error, completed_at=now))


def _postgres_connection(session: Session | Connection) -> Connection | None:
    """The connection to run a worker move on when it is PostgreSQL's, else None."""
    if isinstance(session, Connection):
        return session
    return session.connection() if session.get_bind().dialect.name == "postgresql" else None


def _moved(task: Task | None) -> MovedTask | None:
    if task is None:
        return None
    return MovedTask(task.id, task.owner, task.endpoint, task.data, task.status,
                     task.attempts, bool(task.subscribed))


def mark_not_finished(session: Session, task_id: uuid.UUID, reason: str) -> Task | None:
    """The worker died or went silent; the task will be re-enqueued."""
    return _move(
        session,
        task_id,
        TaskStatus.NOT_FINISHED,
        details={"reason": reason},
        error={"type": "WorkerLost", "message": reason},
        retry_count=Task.retry_count + 1,
    )


def reset_for_retry(session: Session, task: Task) -> Task:
    """``failed``/``not_finished`` back to ``created``, as a user's retry asks."""
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
        retry_count=Task.retry_count + 1,
    )
    if moved is None:  # changed under us
        raise IllegalTransition(task.status, TaskStatus.CREATED.value)
    return moved


def delete_task(session: Session | Connection, task_id: uuid.UUID) -> None:
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
