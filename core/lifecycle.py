"""Every task status change, in one place.

Each move is one conditional ``UPDATE ... WHERE status IN (<legal sources>)``, so an
illegal or racing move changes nothing: the database, not the caller, decides.
Finishing moves also notify waiters (PostgreSQL ``NOTIFY``, delivered on commit).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, literal, select, text, update
from sqlalchemy.orm import Session

from core.models import Task, TaskEvent, UTCDateTime, utcnow
from core.status import IllegalTransition, TaskStatus, check_transition, sources_for

FINISHED_CHANNEL = "hark_task_finished"
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
) -> Task:
    """The API's fast path for :func:`create_task`: the row and its first event as two
    cached Core INSERTs (no ORM unit of work). Returns a detached :class:`Task`."""
    now = utcnow()
    values = dict(id=uuid.uuid4(), owner=owner, endpoint=endpoint, data=data,
                  status=TaskStatus.CREATED.value, priority=priority, queue=queue,
                  progress=0, retry_count=0, attempts=0, created_at=now, updated_at=now)
    details = {"endpoint": endpoint, "queue": queue}
    if conn.dialect.name == "postgresql":  # one round trip: the row and its event together
        row = _TASKS.insert().values(values).returning(_TASKS.c.id).cte("new_task")
        conn.execute(_EVENTS.insert().from_select(
            ["task_id", "type", "at", "details"],
            select(row.c.id, literal("created"), literal(now, UTCDateTime()),
                   literal(details, _EVENTS.c.details.type))))
    else:
        conn.execute(_TASKS.insert(), values)
        conn.execute(_EVENTS.insert(), {"task_id": values["id"], "type": "created", "at": now,
                                        "details": details})
    return Task(**values)


def mark_assigned_many(conn: Connection,
                       items: list[tuple[uuid.UUID, str, datetime]]) -> int:
    """Tasks were published (``(id, queue, published_at)``): move those still ``created``
    to ``assigned`` and put the hand-over in every existing task's trail, at its publish
    time (a worker may have started it already). Returns how many changed status."""
    now = utcnow()
    by_queue: dict[str, list[uuid.UUID]] = {}
    for task_id, queue, _at in items:
        by_queue.setdefault(queue, []).append(task_id)
    moved = 0
    for queue, ids in by_queue.items():
        stmt = (update(_TASKS)
                .where(_TASKS.c.id.in_(ids), _TASKS.c.status == TaskStatus.CREATED.value)
                .values(status=TaskStatus.ASSIGNED.value, queue=queue, assigned_at=now,
                        updated_at=now))
        moved += conn.execute(stmt).rowcount
    existing = set(conn.execute(select(_TASKS.c.id).where(
        _TASKS.c.id.in_([i for i, _q, _a in items]))).scalars())
    events = [{"task_id": i, "type": "assigned", "at": at, "details": {"queue": q}}
              for i, q, at in items if i in existing]
    if events:
        conn.execute(_EVENTS.insert(), events)
    return moved


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


def claim(session: Session, task_id: uuid.UUID, *, worker: str, device: str) -> Task | None:
    """A worker starts the task. None if it is running elsewhere, finished or deleted."""
    now = utcnow()
    return _move(
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
    )


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


def complete(session: Session, task_id: uuid.UUID, result: Any,
             attempt: int | None = None) -> Task | None:
    """Store the result. None if the task was deleted or taken away meanwhile."""
    task = _move(
        session,
        task_id,
        TaskStatus.COMPLETED,
        attempt=attempt,
        result=result,
        error=None,
        progress=100,
        completed_at=utcnow(),
    )
    if task is not None:
        notify_finished(session, task_id)
    return task


def fail(session: Session, task_id: uuid.UUID, error: dict[str, Any],
         attempt: int | None = None) -> Task | None:
    """Record a failure with its details (``{"type", "message"}``)."""
    task = _move(session, task_id, TaskStatus.FAILED, attempt=attempt, error=error,
                 details=error, completed_at=utcnow())
    if task is not None:
        notify_finished(session, task_id)
    return task


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


def delete_task(session: Session, task_id: uuid.UUID) -> None:
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


def notify_finished(session: Session, task_id: uuid.UUID) -> None:
    """Wake API requests waiting on this task (PostgreSQL only; SQLite waiters poll)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": FINISHED_CHANNEL, "payload": str(task_id)},
        )
