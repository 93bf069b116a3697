"""Reading one task for the API's hot paths: ``GET /tasks/<id>`` and sync-mode answers.

One prebuilt Core ``SELECT`` of the public columns (its compiled form and result
metadata are cached after the first call; no ORM loading), in autocommit
(no BEGIN/ROLLBACK round trips). The row comes back as a read-only record with the
task's columns as attributes.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row, bindparam, select

from core.db import Database
from core.models import Task, UTCDateTime
from core.task_sql import PUBLIC_COLUMNS

_TASKS = Task.__table__


def read_task(db: Database, task_id: uuid.UUID, owner: str | None = None) -> Row[Any] | None:
    """The task (``owner``'s, when given), or None."""
    assert db.engine is not None, "Database.configure() was not called"
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn.execute(_read_statement(owner is not None),
                            {"id": task_id, "owner": owner}).first()


# The timestamp columns, which the notify's JSON carries as ISO 8601 strings.
_TIMES = tuple(name for name in PUBLIC_COLUMNS if isinstance(_TASKS.c[name].type, UTCDateTime))


def task_from_notify(row: dict[str, Any]) -> SimpleNamespace:
    """A finished task as its completion ``NOTIFY`` carried it (JSON types), with the
    same attributes and types as :func:`read_task`'s record."""
    values = dict(row, id=uuid.UUID(row["id"]))
    for name in _TIMES:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    return SimpleNamespace(**values)


@functools.cache
def _read_statement(owned: bool):
    query = select(*[_TASKS.c[name] for name in PUBLIC_COLUMNS]).where(
        _TASKS.c.id == bindparam("id"))
    if owned:
        query = query.where(_TASKS.c.owner == bindparam("owner"))
    return query
