"""The task hot paths' fixed PostgreSQL statements: a submission's INSERT and the
workers' status moves (claim, complete, fail).

Each is one statement sent as written: no SQL building, compiling or ORM work per call,
and psycopg prepares it on the server after a few runs. A submission writes the row and
its trail (refused by the owner's active-task cap inside the same statement); a move is
the conditional ``UPDATE``, its trail entry (a CTE ``INSERT`` into ``task_events``), the
"has the owner webhooks?" check and, for the finishing moves, the ``NOTIFY`` that wakes
waiting API requests. So a task's bookkeeping costs three short round trips in all.

The legal source statuses and the fencing on ``attempts`` are those of
:mod:`core.lifecycle`, which uses these on PostgreSQL and its generic Core/ORM path
elsewhere; ``tests/test_task_sql.py`` checks that both write the same rows and trails.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection

from core.status import CAPPED, TaskStatus, sources_for

FINISHED_CHANNEL = "hark_task_finished"


@dataclass(slots=True)
class MovedTask:
    """What a worker needs of a task it moved (not the result: it may be large)."""

    id: uuid.UUID
    owner: str
    endpoint: str
    data: Any
    status: str
    attempts: int
    subscribed: bool


def _sql_list(statuses: Iterable[str]) -> str:
    return ", ".join(f"'{status}'" for status in statuses)


def _insert_sql(capped: bool, assigned: bool) -> str:
    cap = (f"""WHERE (SELECT coalesce(sum(n), 0) FROM task_counts WHERE owner = %(owner)s
                 AND status IN ({_sql_list(CAPPED)})) < %(max_active)s""" if capped else "")
    assigned_step = ("UNION ALL SELECT id, 'assigned', %(at)s, %(assigned_details)s "
                     "FROM new_task" if assigned else "")
    return f"""
WITH new_task AS (
    INSERT INTO tasks (id, owner, endpoint, data, status, priority, queue, progress,
                       retry_count, attempts, created_at, updated_at, assigned_at)
    SELECT %(id)s::uuid, %(owner)s::text, %(endpoint)s::text, %(data)s::jsonb,
           %(status)s::text, %(priority)s::int, %(queue)s::text, 0, 0, 0,
           %(at)s::timestamptz, %(at)s::timestamptz, %(assigned_at)s::timestamptz
    {cap}
    RETURNING id
)
INSERT INTO task_events (task_id, type, at, details)
SELECT id, 'created', %(at)s, %(details)s FROM new_task
{assigned_step}
RETURNING task_id
"""


INSERT_SQL = {(capped, assigned): _insert_sql(capped, assigned)
              for capped in (False, True) for assigned in (False, True)}


def insert(conn: Connection, values: dict[str, Any], *, max_active: int) -> bool:
    """Write a new task's row and trail (``values``: the row's columns as
    :func:`core.lifecycle.insert_task` sets them). False if the active-task cap refused it."""
    assigned = values["assigned_at"] is not None
    params = {**values, "data": Jsonb(values["data"]), "at": values["created_at"],
              "max_active": max_active,
              "details": Jsonb({"endpoint": values["endpoint"], "queue": values["queue"]}),
              "assigned_details": Jsonb({"queue": values["queue"]})}
    return conn.exec_driver_sql(INSERT_SQL[bool(max_active), assigned], params).first() \
        is not None


_SUBSCRIBED = ("EXISTS (SELECT 1 FROM webhooks w WHERE w.owner = moved.owner "
               "AND w.enabled) AS subscribed")
_RETURNED = "id, owner, endpoint, data, status, attempts"

CLAIM_SQL = f"""
WITH moved AS (
    UPDATE tasks SET status = 'running', worker = %(worker)s, device = %(device)s,
        started_at = %(now)s, assigned_at = coalesce(assigned_at, %(now)s),
        heartbeat_at = %(now)s, progress = 0, attempts = attempts + 1, updated_at = %(now)s
    WHERE id = %(id)s AND status IN ({_sql_list(sources_for(TaskStatus.RUNNING))})
    RETURNING {_RETURNED}
), logged AS (
    INSERT INTO task_events (task_id, type, at, details)
    SELECT id, 'started', %(now)s, jsonb_build_object(
        'worker', %(worker)s::text, 'device', %(device)s::text, 'attempt', attempts)
    FROM moved
)
SELECT {_RETURNED}, {_SUBSCRIBED} FROM moved
"""


# A task's public columns (``GET /tasks/<id>``), as the finishing moves' notify carries them.
PUBLIC_COLUMNS = ("id", "owner", "endpoint", "data", "status", "result", "error",
                  "progress", "priority", "retry_count", "attempts", "queue", "device",
                  "worker", "created_at", "assigned_at", "started_at", "completed_at",
                  "updated_at")
# pg_notify refuses payloads of 8000 bytes or more; a larger row is announced by its id.
NOTIFY_ROW_LIMIT = 7900
_ROW_JSON = "json_build_object({})::text".format(
    ", ".join(f"'{name}', {name}" for name in PUBLIC_COLUMNS))


def _finish_sql(target: TaskStatus, assignments: str, details: str, fenced: bool,
                notify: bool) -> str:
    fence = "AND attempts = %(attempt)s" if fenced else ""
    returned, source, announce = _RETURNED, "moved", ""
    if notify:  # the whole public row when it fits, so a waiting request need not read it
        returned = ", ".join(PUBLIC_COLUMNS)
        source = f"(SELECT moved.*, {_ROW_JSON} AS payload FROM moved) AS moved"
        announce = (f", pg_notify(%(channel)s, CASE WHEN octet_length(payload) < "
                    f"{NOTIFY_ROW_LIMIT} THEN payload ELSE id::text END)")
    return f"""
WITH moved AS (
    UPDATE tasks SET status = '{target}', {assignments},
        completed_at = %(now)s, updated_at = %(now)s
    WHERE id = %(id)s AND status IN ({_sql_list(sources_for(target))}) {fence}
    RETURNING {returned}
), logged AS (
    INSERT INTO task_events (task_id, type, at, details)
    SELECT id, '{target}', %(now)s, {details} FROM moved
)
SELECT {_RETURNED}, {_SUBSCRIBED}{announce} FROM {source}
"""


COMPLETE_SQL = {(fenced, notify): _finish_sql(
    TaskStatus.COMPLETED, "result = %(result)s, error = NULL, progress = 100", "NULL",
    fenced, notify) for fenced in (False, True) for notify in (False, True)}
FAIL_SQL = {(fenced, notify): _finish_sql(
    TaskStatus.FAILED, "error = %(error)s", "%(error)s", fenced, notify)
    for fenced in (False, True) for notify in (False, True)}


def claim(conn: Connection, task_id: uuid.UUID, *, worker: str, device: str,
          now: datetime) -> MovedTask | None:
    """``running`` with a new attempt; None if running elsewhere, finished or deleted."""
    return _one(conn, CLAIM_SQL, {"id": task_id, "worker": worker, "device": device,
                                  "now": now})


def complete(conn: Connection, task_id: uuid.UUID, result: Any, attempt: int | None,
             now: datetime, notify: bool | str = True) -> MovedTask | None:
    """``completed`` with ``result``; None if deleted or taken away (``attempt`` fence).
    ``notify``: announce it to waiting API requests (the whole row when it fits), on
    the shared channel (True) or on the waiting API process's own (its name)."""
    return _one(conn, COMPLETE_SQL[attempt is not None, bool(notify)],
                {"id": task_id, "result": Jsonb(result), "attempt": attempt, "now": now,
                 "channel": notify_channel(notify)})


def fail(conn: Connection, task_id: uuid.UUID, error: dict[str, Any], attempt: int | None,
         now: datetime, notify: bool | str = True) -> MovedTask | None:
    """``failed`` with ``error``; None if deleted or taken away (``attempt`` fence).
    ``notify``: as for :func:`complete`."""
    return _one(conn, FAIL_SQL[attempt is not None, bool(notify)],
                {"id": task_id, "error": Jsonb(error), "attempt": attempt, "now": now,
                 "channel": notify_channel(notify)})


_CHANNEL_NAME = re.compile(r"[a-z0-9_]{1,63}")


def notify_channel(notify: bool | str) -> str:
    """The channel a finish is announced on: a well-formed name from the task message
    (an API process's own), else the shared one."""
    if isinstance(notify, str) and _CHANNEL_NAME.fullmatch(notify):
        return notify
    return FINISHED_CHANNEL


def _one(conn: Connection, sql: str, params: dict[str, Any]) -> MovedTask | None:
    row = conn.exec_driver_sql(sql, params).first()
    return MovedTask(*row[:7]) if row is not None else None
