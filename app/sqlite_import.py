"""``flask db import-sqlite PATH``: copy an older Hark's SQLite database into PostgreSQL.

Releases before pgvector kept the embedded default's data in ``var/hark.db``. This reads
that file with the standard library's ``sqlite3`` (schema 0001-0005), converts each
value to its column's type (UUIDs, JSON, UTC timestamps, booleans) and inserts the rows
into the migrated PostgreSQL database (no tasks, collections or webhooks yet; API keys it
holds already are kept) in foreign-key order, in one transaction.
``task_counts`` is not copied: the count triggers rebuild it from the inserted tasks.
Worker presence is not copied either (live workers write it again).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

import core.models_collections
import core.models_webhooks  # noqa: F401 - their tables join Base.metadata
from core.models import Base

SKIPPED = {"task_counts", "worker_presence"}
BATCH = 500
SCHEMAS = {"0001", "0002", "0003", "0004", "0005"}


class ImportRefused(Exception):
    """The SQLite file or the target database is not one this import can take."""


def _convert(column: sa.Column, value: Any) -> Any:
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, sa.Uuid):
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    if isinstance(kind, sa.JSON):
        return json.loads(value) if isinstance(value, str | bytes) else value
    if isinstance(kind, sa.DateTime) or isinstance(getattr(kind, "impl", None), sa.DateTime):
        stamp = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if isinstance(kind, sa.Boolean):
        return bool(value)
    return value


def _rows(source: sqlite3.Connection, table: sa.Table, names: list[str]) -> Iterator[list]:
    quoted = ", ".join(f'"{n}"' for n in names)
    order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns) or "rowid"
    cursor = source.execute(f'SELECT {quoted} FROM "{table.name}" ORDER BY {order}')
    columns = [table.c[n] for n in names]
    while batch := cursor.fetchmany(BATCH):
        yield [{c.name: _convert(c, v) for c, v in zip(columns, row, strict=True)}
               for row in batch]


def _check(source: sqlite3.Connection, target: Connection) -> None:
    try:
        version = source.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ImportRefused(f"not a Hark SQLite database ({exc})") from None
    if version is None or version[0] not in SCHEMAS:
        raise ImportRefused(f"unknown SQLite schema {version and version[0]!r}")
    for table in ("tasks", "collections", "webhooks"):
        if target.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar():
            raise ImportRefused(f"the target database already holds {table}: import into an "
                                "empty, migrated database (flask db upgrade)")


def import_sqlite(path: Path, target: Connection) -> dict[str, int]:
    """Copy every row of the SQLite file at ``path``; returns rows copied per table.

    ``target`` is a connection to the migrated PostgreSQL database, inside a transaction
    the caller commits."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        _check(source, target)
        present = {row[0] for row in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        copied: dict[str, int] = {}
        for table in Base.metadata.sorted_tables:
            if table.name in SKIPPED or table.name not in present:
                continue
            have = {row[1] for row in source.execute(f'PRAGMA table_info("{table.name}")')}
            names = [c.name for c in table.columns if c.name in have]
            copied[table.name] = 0
            # A key may be there already (the bootstrap key, ensured by `flask db upgrade`).
            statement = (postgresql.insert(table).on_conflict_do_nothing()
                         if table.name == "api_keys" else sa.insert(table))
            for batch in _rows(source, table, names):
                target.execute(statement, batch)
                copied[table.name] += len(batch)
            _advance_sequences(target, table)
        _link_uploads(target)
        return copied
    finally:
        source.close()


def _link_uploads(target: Connection) -> None:
    """Uploads belong to their task, as migration 0007 links existing ones."""
    target.execute(sa.text(
        "UPDATE media_blobs b SET task_id = t.id FROM tasks t "
        "WHERE b.task_id IS NULL AND t.data -> 'media' ->> 'blob_id' = b.id::text"))


def _advance_sequences(target: Connection, table: sa.Table) -> None:
    """Explicit ids were inserted: move each identity sequence past the largest."""
    for column in table.primary_key.columns:
        if not isinstance(column.type, sa.Integer) or column.autoincrement is False:
            continue
        sequence = target.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                  {"t": table.name, "c": column.name}).scalar()
        if sequence:
            target.execute(sa.text(
                f'SELECT setval(:s, COALESCE((SELECT max("{column.name}") FROM '
                f'"{table.name}"), 0) + 1, false)'), {"s": sequence})
