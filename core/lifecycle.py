"""Every task status change, in one place.

Each move is one conditional ``UPDATE ... WHERE status IN (<legal sources>)``, so an
illegal or racing move changes nothing: the database, not the caller, decides.
Finishing moves also notify waiters (PostgreSQL ``NOTIFY``, delivered on commit).
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    bindparam,
    cast,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from core.models import Task, TaskCount, TaskEvent, UTCDateTime, utcnow
from core.models_webhooks import Webhook
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
    max_active: int = 0,
    assigned: bool = False,
) -> Task | None:
    """The API's fast path for :func:`create_task`: the row and its trail as cached Core
    INSERTs (no ORM unit of work; one statement on PostgreSQL). Returns a detached
    :class:`Task`, or None when ``max_active`` is set and the owner already has that many
    active tasks (read from the trigger-kept counters inside the same statement: a soft
    cap, concurrent submissions may pass it by a few).

    ``assigned``: the row is written already ``assigned`` to ``queue``, its trail
    ``created`` then ``assigned``: the caller publishes its message next (see
    :func:`core.dispatch.submit`)."""
    now = utcnow()
    status = TaskStatus.ASSIGNED if assigned else TaskStatus.CREATED
    values = dict(id=uuid.uuid4(), owner=owner, endpoint=endpoint, data=data,
                  status=status.value, priority=priority, queue=queue, progress=0,
                  retry_count=0, attempts=0, created_at=now, updated_at=now,
                  assigned_at=now if assigned else None)
    details = {"endpoint": endpoint, "queue": queue}
    if conn.dialect.name == "postgresql":
        params = dict(values, at=now, details=details, max_active=max_active,
                      assigned_details={"queue": queue})
        created = conn.execute(_insert_statement(bool(max_active), assigned), params).first()
        return Task(**values) if created else None
    if max_active and conn.scalar(select(active_count(owner))) >= max_active:
        return None
    conn.execute(_TASKS.insert(), values)
    events = [{"task_id": values["id"], "type": "created", "at": now, "details": details}]
    if assigned:
        events.append({"task_id": values["id"], "type": "assigned", "at": now,
                       "details": {"queue": queue}})
    conn.execute(_EVENTS.insert(), events)
    return Task(**values)


_INSERTED = ("id", "owner", "endpoint", "data", "status", "priority", "queue", "progress",
             "retry_count", "attempts", "created_at", "updated_at", "assigned_at")


@functools.cache
def _insert_statement(capped: bool, assigned: bool):
    """INSERT of the row (refused by the cap when ``capped``) and its trail, built once:
    only the parameters change per call."""
    source = select(*[bindparam(name, type_=_TASKS.c[name].type) for name in _INSERTED])
    if capped:
        source = source.where(active_count(bindparam("owner")) < bindparam("max_active"))
    row = _TASKS.insert().from_select(list(_INSERTED), source).returning(_TASKS.c.id)
    row = row.cte("new_task")
    at = bindparam("at", type_=UTCDateTime())
    json_type = _EVENTS.c.details.type
    trail = select(row.c.id, literal("created"), at, bindparam("details", type_=json_type))
    if assigned:
        trail = trail.union_all(select(row.c.id, literal("assigned"), at,
                                       bindparam("assigned_details", type_=json_type)))
    return (_EVENTS.insert().from_select(["task_id", "type", "at", "details"], trail)
            .returning(_EVENTS.c.task_id))


def active_count(owner: Any):
    """Scalar subquery: the owner's created, assigned and running tasks (from counters)."""
    active = [TaskStatus.CREATED.value, TaskStatus.ASSIGNED.value, TaskStatus.RUNNING.value]
    return (select(func.coalesce(func.sum(TaskCount.n), 0))
            .where(TaskCount.owner == owner, TaskCount.status.in_(active))
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
    notify: bool = False,
    detached: bool = False,
    **values: Any,
) -> Task | None:
    """Move ``task_id`` to ``target`` if its status allows it; return the row or None.

    ``detached`` (the workers' hot path): on PostgreSQL the move, its trail entry and the
    notify are one Core statement and the row comes back as a detached :class:`Task`
    (an instance already in ``session`` is not refreshed).

    ``attempt`` fences a worker's writes: only the run that claimed attempt N may finish
    it, so a worker cut off from the network cannot complete a task re-run elsewhere.
    The same statement tells whether the owner has webhooks (``task.subscribed``, so
    workers skip the lookup when nobody listens) and, with ``notify``, wakes API
    requests waiting on the task (PostgreSQL ``NOTIFY``, delivered on commit).
    """
    sources = only_from if only_from is not None else sources_for(target)
    now = utcnow()
    conditions = [Task.id == task_id, Task.status.in_(sources)]
    if attempt is not None:
        conditions.append(Task.attempts == attempt)
    if detached and session.get_bind().dialect.name == "postgresql":
        return _move_in_one_statement(session, conditions, target, now, event, details,
                                      notify, values)
    extra = [_SUBSCRIBED]
    if notify and session.get_bind().dialect.name == "postgresql":
        extra.append(func.pg_notify(FINISHED_CHANNEL, cast(Task.id, String)))
    stmt = (
        update(Task)
        .where(*conditions)
        .values(status=target.value, updated_at=now, **values)
        .returning(Task, *extra)
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


def _move_in_one_statement(session: Session, conditions: list, target: TaskStatus,
                           now: datetime, event: str | None, details: Any, notify: bool,
                           values: dict[str, Any]) -> Task | None:
    """``UPDATE ... RETURNING`` with the trail INSERT in a CTE: one round trip."""
    moved = (update(_TASKS).where(*conditions)
             .values(status=target.value, updated_at=now, **values)
             .returning(*_TASKS.c, _SUBSCRIBED).cte("moved"))
    json_type = _EVENTS.c.details.type
    if callable(details):  # claim: the details name the attempt the UPDATE counted
        trail_details = literal(details(None), json_type).op("||")(
            func.jsonb_build_object("attempt", moved.c.attempts))
    else:
        trail_details = literal(details, json_type)
    logged = _EVENTS.insert().from_select(
        ["task_id", "type", "at", "details"],
        select(moved.c.id, literal(event or target.value), literal(now, UTCDateTime()),
               trail_details)).cte("logged")
    columns = [moved.c[c.name] for c in _TASKS.c] + [moved.c.subscribed]
    if notify:
        columns.append(func.pg_notify(FINISHED_CHANNEL, cast(moved.c.id, String)))
    row = session.execute(select(*columns).add_cte(logged)).first()
    if row is None:
        return None
    task = Task(**{c.name: row[i] for i, c in enumerate(_TASKS.c)})
    task.subscribed = bool(row[len(_TASKS.c)])
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
        details=lambda t: {"worker": worker, "device": device}
        | ({"attempt": t.attempts} if t is not None else {}),
        detached=True,
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
        notify=True,
        detached=True,
    )
    if task is not None and not _can_notify_inline(session):
        notify_finished(session, task_id)
    return task


def fail(session: Session, task_id: uuid.UUID, error: dict[str, Any],
         attempt: int | None = None) -> Task | None:
    """Record a failure with its details (``{"type", "message"}``)."""
    task = _move(session, task_id, TaskStatus.FAILED, attempt=attempt, error=error,
                 details=error, completed_at=utcnow(), notify=True, detached=True)
    if task is not None and not _can_notify_inline(session):
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


def _can_notify_inline(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def notify_finished(session: Session, task_id: uuid.UUID) -> None:
    """Wake API requests waiting on this task (PostgreSQL only; SQLite waiters poll)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": FINISHED_CHANNEL, "payload": str(task_id)},
        )
