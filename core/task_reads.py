"""Reading one task for the API's hot paths: ``GET /tasks/<id>`` and sync-mode answers.

On PostgreSQL the read is one fixed statement sent as written (no SQL building or ORM
loading per call; psycopg prepares it after a few runs) on an autocommit connection;
elsewhere it is the equivalent Core ``SELECT``. Either way the row comes back as a
read-only record with the task's public columns as attributes.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import Row, bindparam, select

from core.db import Database
from core.models import Task

PUBLIC_COLUMNS = ("id", "owner", "endpoint", "data", "status", "result", "error",
                  "progress", "priority", "retry_count", "attempts", "queue", "device",
                  "worker", "created_at", "assigned_at", "started_at", "completed_at",
                  "updated_at")
_TASKS = Task.__table__

_READ_SQL = f"SELECT {', '.join(PUBLIC_COLUMNS)} FROM tasks WHERE id = %(id)s"
_READ_OWNED_SQL = _READ_SQL + " AND owner = %(owner)s"


def read_task(db: Database, task_id: uuid.UUID, owner: str | None = None) -> Row[Any] | None:
    """The task (``owner``'s, when given), or None."""
    assert db.engine is not None, "Database.configure() was not called"
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
            sql, params = _READ_SQL, {"id": task_id}
            if owner is not None:
                sql, params = _READ_OWNED_SQL, {"id": task_id, "owner": owner}
            return conn.exec_driver_sql(sql, params).first()
        return conn.execute(_read_statement(owner is not None),
                            {"id": task_id, "owner": owner}).first()


@functools.cache
def _read_statement(owned: bool):
    query = select(*[_TASKS.c[name] for name in PUBLIC_COLUMNS]).where(
        _TASKS.c.id == bindparam("id"))
    if owned:
        query = query.where(_TASKS.c.owner == bindparam("owner"))
    return query
