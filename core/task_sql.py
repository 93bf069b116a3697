"""Every task status move and a submission's INSERT, as fixed PostgreSQL statements.

Each is one statement sent as written: no SQL building, compiling or ORM work per call,
and psycopg prepares it on the server after a few runs. A submission writes the row and
its trail (refused by the owner's active-task cap inside the same statement). A move is a
compare-and-set: its ``UPDATE`` names what the caller saw (a worker finishes only the
run it claimed: ``running`` at its own attempt; the sweeper declares lost only a task
still in the status, attempt and staleness it judged), and the same statement writes the
move's trail entry (``task_events``), its webhook deliveries (the transactional outbox:
a delivery exists if and only if the move committed), the ``NOTIFY`` that wakes the
delivery relay when it wrote any, and for finishing moves the ``NOTIFY`` that wakes
waiting API requests. So a task's bookkeeping costs three short round trips in all, and
two WAL flushes: the claim commits without waiting for its own (see ``CLAIM_SQL``).
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


def _sql_list(statuses: Iterable[str]) -> str:
    return ", ".join(f"'{status}'" for status in statuses)


# A keyed submission's claim of its ``Idempotency-Key``, made by the task's own INSERT
# (a key new to the owner, or one whose claim expired, which it replaces). Conflicting
# with a claim another request has not committed, it waits for that one's commit.
_CLAIM_KEY = """claimed AS (
    INSERT INTO idempotency_keys AS held (owner, key, endpoint, fingerprint, task_id,
                                          created_at)
    SELECT %(owner)s::text, %(key)s::text, %(key_endpoint)s::text, %(fingerprint)s::text,
           %(id)s::uuid, %(at)s::timestamptz {room}
    ON CONFLICT (owner, key) DO UPDATE SET endpoint = excluded.endpoint,
        fingerprint = excluded.fingerprint, task_id = excluded.task_id,
        created_at = excluded.created_at
    WHERE held.created_at < %(expired)s
    RETURNING task_id
), """


def _insert_sql(capped: bool, assigned: bool, keyed: bool = False) -> str:
    room = (f"""(SELECT coalesce(sum(n), 0) FROM task_counts WHERE owner = %(owner)s
                 AND status IN ({_sql_list(CAPPED)})) < %(max_active)s""" if capped
            else "true")
    assigned_step = ("UNION ALL SELECT id, 'assigned', %(at)s, %(assigned_details)s "
                     "FROM new_task" if assigned else "")
    head, source, cap = "WITH ", "", f"WHERE {room}" if capped else ""
    if keyed:  # the cap refuses the claim too: a refused request holds no key
        head = f"WITH room AS (SELECT {room} AS ok), " + _CLAIM_KEY.format(
            room="FROM room WHERE ok")
        source, cap = "FROM claimed", ""
    events = f"""INSERT INTO task_events (task_id, type, at, details)
SELECT id, 'created', %(at)s, %(details)s FROM new_task
{assigned_step}"""
    tail = (f"logged AS ({events})\nSELECT EXISTS (SELECT FROM new_task) AS made, "
            "(SELECT ok FROM room) AS room" if keyed else f"{events}\nRETURNING task_id")
    return f"""
{head}new_task AS (
    INSERT INTO tasks (id, owner, endpoint, data, status, priority, queue, progress,
                       retry_count, attempts, created_at, updated_at, assigned_at)
    SELECT %(id)s::uuid, %(owner)s::text, %(endpoint)s::text, %(data)s::jsonb,
           %(status)s::text, %(priority)s::int, %(queue)s::text, 0, 0, 0,
           %(at)s::timestamptz, %(at)s::timestamptz, %(assigned_at)s::timestamptz
    {source} {cap}
    RETURNING id
){"," if keyed else ""}
{tail}
"""


INSERT_SQL = {(capped, assigned, keyed): _insert_sql(capped, assigned, keyed)
              for capped in (False, True) for assigned in (False, True)
              for keyed in (False, True)}


class KeyHeld(Exception):
    """A keyed submission's ``Idempotency-Key`` is held by another request (see
    :mod:`core.idempotency`): its statement made no task."""


def insert(conn: Connection, values: dict[str, Any], *, max_active: int,
           key: dict[str, Any] | None = None) -> bool:
    """Write a new task's row and trail (``values``: the row's columns as
    :func:`core.lifecycle.insert_task` sets them). False if the active-task cap refused it.

    ``key`` (``owner``-scoped ``key``, ``key_endpoint``, ``fingerprint``, ``expired``):
    claim that idempotency key for this task in the same statement, so a keyed
    submission costs no more round trips than a plain one; :class:`KeyHeld` (and no
    task) if another request holds it. The cap, when it refuses, claims nothing."""
    assigned = values["assigned_at"] is not None
    params = {**values, "data": Jsonb(values["data"]), "at": values["created_at"],
              "max_active": max_active,
              "details": Jsonb({"endpoint": values["endpoint"], "queue": values["queue"]}),
              "assigned_details": Jsonb({"queue": values["queue"]}), **(key or {})}
    row = conn.exec_driver_sql(INSERT_SQL[bool(max_active), assigned, key is not None],
                               params).first()
    if key is None:
        return row is not None
    if not row.made and row.room:
        raise KeyHeld(key["key"])
    return bool(row.made)


_RETURNED = "id, owner, endpoint, data, status, attempts"
DELIVERIES_CHANNEL = "hark_deliveries"


def _wants(column: str, event: str) -> str:
    """SQL: an events filter (NULL or JSON null: every event; a name; a list of names)
    selects ``event``."""
    return (f"({column} IS NULL OR jsonb_typeof({column}) = 'null' "
            f"OR {column} @> to_jsonb('{event}'::text))")


def outbox(event: str) -> str:
    """The CTE that writes a move's webhook deliveries (the transactional outbox): one row
    per enabled subscription of the owner that wants ``event`` and one for the task's
    own ``webhook`` callback, so a delivery exists if and only if the move committed.
    ``message_id`` is the same for every destination of one event of one attempt."""
    return f"""delivered AS (
    INSERT INTO webhook_deliveries (id, message_id, webhook_id, url, owner, event, task_id,
        task_attempt, status, attempts, retry_from, due_at, created_at, updated_at)
    SELECT gen_random_uuid(),
           'msg_' || md5(moved.id::text || ':{event}:' || moved.attempts::text),
           dest.webhook_id, dest.url, moved.owner, '{event}', moved.id, moved.attempts,
           'pending', 0, 1, %(now)s, %(now)s, %(now)s
    FROM moved CROSS JOIN LATERAL (
        SELECT w.id AS webhook_id, NULL::varchar AS url FROM webhooks w
        WHERE w.owner = moved.owner AND w.enabled AND {_wants('w.events', event)}
        UNION ALL
        SELECT NULL::uuid, moved.data ->> 'webhook'
        WHERE coalesce(moved.data ->> 'webhook', '') <> ''
          AND {_wants("moved.data -> 'webhook_events'", event)}
    ) AS dest
    RETURNING 1
)"""


# Wakes the delivery relay when the move wrote deliveries (sent on commit).
_WAKE_RELAY = f"(SELECT pg_notify('{DELIVERIES_CHANNEL}', '') FROM delivered LIMIT 1) AS woke"

# In a statement's select list: that statement's commit does not wait for its WAL flush
# (``synchronous_commit`` off for its own transaction; the session keeps its setting).
# Claims, heartbeats and idempotency claims use it. A claim is soft state:
# its message stays unacknowledged until the run ends, so a claim lost in a database crash
# leaves the task ``assigned`` at its old attempt, the run's completion is then refused by
# its compare-and-set and the task runs again (its ``task.started`` delivery, lost with
# the claim, is written again under the same message id). Submissions, completions and
# failures keep waiting for the flush: what a client was told is never lost.
LAZY_COMMIT = "set_config('synchronous_commit', 'off', true)"

CLAIM_SQL = f"""
WITH moved AS (
    UPDATE tasks SET status = 'running', worker = %(worker)s, device = %(device)s,
        started_at = %(now)s, assigned_at = coalesce(assigned_at, %(now)s),
        heartbeat_at = %(now)s, progress = 0, attempts = attempts + 1,
        claim_token = %(token)s, updated_at = %(now)s
    WHERE id = %(id)s AND status IN ({_sql_list(sources_for(TaskStatus.RUNNING))})
    RETURNING {_RETURNED}
), logged AS (
    INSERT INTO task_events (task_id, type, at, details)
    SELECT id, 'started', %(now)s, jsonb_build_object(
        'worker', %(worker)s::text, 'device', %(device)s::text, 'attempt', attempts)
    FROM moved
), {outbox("task.started")}
SELECT {_RETURNED}, {_WAKE_RELAY}, {LAZY_COMMIT} AS lazy_commit FROM moved
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


def _move_sql(target: TaskStatus, assignments: str, condition: str, details: str,
              event: str, notify: bool) -> str:
    """A move of one task to ``target`` if ``condition`` (what its caller saw) still
    holds: the UPDATE, its trail entry, its deliveries and, with ``notify``, the
    announcement to waiting API requests."""
    returned, source, announce = _RETURNED, "moved", ""
    if notify:  # the whole public row when it fits, so a waiting request need not read it
        returned = ", ".join(PUBLIC_COLUMNS)
        source = f"(SELECT moved.*, {_ROW_JSON} AS payload FROM moved) AS moved"
        announce = (f", pg_notify(%(channel)s, CASE WHEN octet_length(payload) < "
                    f"{NOTIFY_ROW_LIMIT} THEN payload ELSE id::text END)")
    return f"""
WITH moved AS (
    UPDATE tasks SET status = '{target}', {assignments}, updated_at = %(now)s
    WHERE id = %(id)s AND {condition}
    RETURNING {returned}
), logged AS (
    INSERT INTO task_events (task_id, type, at, details)
    SELECT id, '{target}', %(now)s, {details} FROM moved
), {outbox(event)}
SELECT {_RETURNED}, {_WAKE_RELAY}{announce} FROM {source}
"""


# A worker finishes only its own run: the task is still running with its attempt.
_OWN_RUN = "status = 'running' AND attempts = %(attempt)s"
COMPLETE_SQL = {notify: _move_sql(
    TaskStatus.COMPLETED,
    "result = %(result)s, error = NULL, progress = 100, completed_at = %(now)s",
    _OWN_RUN, "NULL", "task.completed", notify) for notify in (False, True)}
FAIL_SQL = {notify: _move_sql(
    TaskStatus.FAILED, "error = %(error)s, completed_at = %(now)s", _OWN_RUN, "%(error)s",
    "task.failed", notify) for notify in (False, True)}

# The sweeper's moves: only if the task is still in the status, attempt and staleness
# (heartbeat for ``running``, last change for ``assigned``) that it judged lost.
_STALE = {"running": "heartbeat_at", "assigned": "updated_at"}


def _lost_condition(seen: str) -> str:
    return (f"status = '{seen}' AND attempts = %(attempt)s "
            f"AND {_STALE[seen]} < %(stale_before)s")


NOT_FINISHED_SQL = {seen: _move_sql(
    TaskStatus.NOT_FINISHED, "error = %(error)s, retry_count = retry_count + 1",
    _lost_condition(seen), "jsonb_build_object('reason', %(reason)s::text)",
    "task.not_finished", False) for seen in _STALE}
GIVE_UP_SQL = {seen: _move_sql(
    TaskStatus.FAILED, "error = %(error)s, completed_at = %(now)s", _lost_condition(seen),
    "%(error)s", "task.failed", True) for seen in _STALE}

READ_SQL = f"SELECT {_RETURNED}, claim_token FROM tasks WHERE id = %(id)s"


def claim(conn: Connection, task_id: uuid.UUID, *, worker: str, device: str,
          now: datetime, token: uuid.UUID | None = None) -> MovedTask | None:
    """``running`` with a new attempt; None if running elsewhere, finished or deleted.
    ``token`` is kept on the row, so a retried claim can recognise its own commit."""
    return _one(conn, CLAIM_SQL, {"id": task_id, "worker": worker, "device": device,
                                  "now": now, "token": token})


def complete(conn: Connection, task_id: uuid.UUID, result: Any, attempt: int,
             now: datetime, notify: bool | str = True) -> MovedTask | None:
    """``completed`` with ``result``; None unless the task is still running attempt
    ``attempt`` (deleted, or declared lost and taken away). ``notify``: announce it to
    waiting API requests (the whole row when it fits), on the shared channel (True) or
    on the waiting API process's own (its name)."""
    return _one(conn, COMPLETE_SQL[bool(notify)],
                {"id": task_id, "result": Jsonb(result), "attempt": attempt, "now": now,
                 "channel": notify_channel(notify)})


def fail(conn: Connection, task_id: uuid.UUID, error: dict[str, Any], attempt: int,
         now: datetime, notify: bool | str = True) -> MovedTask | None:
    """``failed`` with ``error``; None unless the task is still running attempt
    ``attempt``. ``notify``: as for :func:`complete`."""
    return _one(conn, FAIL_SQL[bool(notify)],
                {"id": task_id, "error": Jsonb(error), "attempt": attempt, "now": now,
                 "channel": notify_channel(notify)})


def declare_lost(conn: Connection, task_id: uuid.UUID, *, seen: str, attempt: int,
                 stale_before: datetime, reason: str, give_up: bool,
                 now: datetime) -> MovedTask | None:
    """The sweeper's move of a task whose worker or message vanished: ``not_finished``
    (to be re-run), or ``failed`` when ``give_up``. Applies only if the task is still
    ``seen`` (running or assigned), at ``attempt``, and stale before ``stale_before``:
    a task claimed, finished or beating since it was judged lost is left alone."""
    error = {"type": "WorkerLost", "message": reason}
    sql = (GIVE_UP_SQL if give_up else NOT_FINISHED_SQL)[seen]
    return _one(conn, sql, {"id": task_id, "attempt": attempt, "stale_before": stale_before,
                            "reason": reason, "error": Jsonb(error), "now": now,
                            "channel": FINISHED_CHANNEL})


def read(conn: Connection, task_id: uuid.UUID) -> tuple[MovedTask, uuid.UUID | None] | None:
    """The task as a move returns it, and its claim token; None if it is gone."""
    row = conn.exec_driver_sql(READ_SQL, {"id": task_id}).first()
    return (MovedTask(*row[:6]), row[6]) if row is not None else None


_CHANNEL_NAME = re.compile(r"[a-z0-9_]{1,63}")


def notify_channel(notify: bool | str) -> str:
    """The channel a finish is announced on: a well-formed name from the task message
    (an API process's own), else the shared one."""
    if isinstance(notify, str) and _CHANNEL_NAME.fullmatch(notify):
        return notify
    return FINISHED_CHANNEL


def _one(conn: Connection, sql: str, params: dict[str, Any]) -> MovedTask | None:
    row = conn.exec_driver_sql(sql, params).first()
    return MovedTask(*row[:6]) if row is not None else None
