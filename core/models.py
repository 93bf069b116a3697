"""Database tables. Models hold data only; schemas in ``app.schemas`` serialise them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from core.status import TaskStatus

JSONType = JSONB()
SeqType = BigInteger()

ACTIVE_STATUSES = ("created", "assigned", "running", "not_finished")
_ACTIVE_WHERE = text("status IN ('created', 'assigned', 'running', 'not_finished')")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp; a naive value is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Task(Base):
    """One request to an analysis endpoint, from submission to result."""

    __tablename__ = "tasks"
    # Not a column: set by status moves that read it (has the owner webhooks?).
    subscribed = None

    # Internal, monotonic: orders listings (newest first) and drives cursor paging.
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(100))
    endpoint: Mapped[str] = mapped_column(String(100))
    data: Mapped[Any] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.CREATED.value)
    result: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    progress: Mapped[int] = mapped_column(SmallInteger, default=0)
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queue: Mapped[str | None] = mapped_column(String(100), nullable=True)
    device: Mapped[str | None] = mapped_column(String(50), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The token of the run that claimed it: a retried claim recognises its own commit.
    claim_token: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)

    __table_args__ = (
        UniqueConstraint("id", name="uq_tasks_id"),
        Index("ix_tasks_owner_seq", "owner", "seq"),
        Index("ix_tasks_owner_status_seq", "owner", "status", "seq"),
        # Small: only unfinished tasks. Serves the sweeper.
        Index(
            "ix_tasks_active",
            "status",
            "updated_at",
            postgresql_where=_ACTIVE_WHERE,
        ),
    )


class TaskEvent(Base):
    """One step in a task's life (created, assigned, started, progress, retried, ...)."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_events_task_id")
    )
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[Any | None] = mapped_column(JSONType, nullable=True)

    __table_args__ = (Index("ix_task_events_task_id_id", "task_id", "id"),)


class WorkerPresence(Base):
    """A live worker pool process: where it runs, what it does, what it can run and what
    it has loaded.

    Each process upserts its row every heartbeat interval; a row not refreshed for three
    intervals is offline. ``stats`` carries cumulative counters for ``/metrics``.
    """

    __tablename__ = "worker_presence"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    node: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    device: Mapped[str] = mapped_column(String(50))
    queues: Mapped[Any] = mapped_column(JSONType, nullable=False)
    models: Mapped[Any] = mapped_column(JSONType, nullable=False)
    # Models this process can run (loaded or not); the API accepts their union.
    available: Mapped[Any] = mapped_column(JSONType, nullable=False, default=list,
                                           server_default=text("'[]'::jsonb"))
    current_task: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    stats: Mapped[Any] = mapped_column(JSONType, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TaskCount(Base):
    """Per-owner task counts by status, kept by database triggers (see the migrations).

    Counts are split over shards (``seq % 16``) so concurrent writers seldom touch
    the same row; a count is the sum over shards.
    """

    __tablename__ = "task_counts"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class ApiKey(Base):
    """An API key. Only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),)


class MediaBlob(Base):
    """An uploaded media file, stored in the database so any worker host can read it.
    Written in the transaction that writes its task, and deleted with it."""

    __tablename__ = "media_blobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    task_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("tasks.id", ondelete="CASCADE", name="fk_media_blobs_task_id"),
        nullable=True, index=True)
    owner: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MediaChunk(Base):
    """One piece (up to 1 MiB) of a media blob."""

    __tablename__ = "media_chunks"

    blob_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("media_blobs.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# Tables defined in sibling modules register on Base.metadata when imported here.
from core import (  # noqa: E402,F401
    models_collections,
    models_edits,
    models_idempotency,
    models_stream,
    models_webhooks,
)
