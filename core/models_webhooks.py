"""Webhook tables (subscriptions, callback secrets, deliveries, attempts).

Imported by ``core.models``. A *delivery* is one message (one event of one task, with a
fixed ``webhook-id`` and body) on its way to one destination: a subscription, or the
one-off ``webhook`` URL a task carried. Each HTTP request made for it is an *attempt*.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, JSONType, SeqType, UTCDateTime, utcnow

URL_MAX = 2048


class DeliveryStatus(StrEnum):
    """Where a delivery is; only ``pending`` and ``sending`` rows will be attempted again."""

    PENDING = "pending"
    """Waiting for its next attempt, due at ``due_at``; a Celery message is on its way."""
    SENDING = "sending"
    """An attempt is in flight; ``due_at`` is when that attempt's worker counts as lost."""
    SUCCEEDED = "succeeded"
    """The destination answered 2xx."""
    FAILED = "failed"
    """Gave up: a 4xx (410 also disables the subscription), a refused URL, or retries ran out."""


class Webhook(Base):
    """A subscription: an owner's URL that receives the events it asked for, signed."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(URL_MAX))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # A list of event names; NULL means every event, including ones added later.
    events: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    secret: Mapped[str] = mapped_column(String(100))
    # After a rotation the old secret also signs, until it expires.
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime,
                                                                        nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_webhooks_owner", "owner"),)


class CallbackSecret(Base):
    """The secret that signs an owner's one-off callbacks (a task's ``webhook`` URL)."""

    __tablename__ = "webhook_callback_secrets"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime,
                                                                        nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One message to one destination, with its state; survives worker crashes."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # The webhook-id header: the same on every attempt and redelivery, and shared by
    # every destination of one event.
    message_id: Mapped[str] = mapped_column(String(40))
    # NULL for a task's one-off callback, whose URL is then in ``url``.
    webhook_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid,
        ForeignKey("webhooks.id", name="fk_webhook_deliveries_webhook_id", ondelete="CASCADE"),
        nullable=True,
    )
    url: Mapped[str | None] = mapped_column(String(URL_MAX), nullable=True)
    owner: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(40))
    task_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The task's attempt whose move wrote this delivery (the outbox: same transaction).
    # The body is built from the task row when it is sent.
    task_attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The attempt number that began the current retry series (1, or a redelivery's first).
    retry_from: Mapped[int] = mapped_column(Integer, default=1)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_webhook_deliveries_status_due_at", "status", "due_at"),
        Index("ix_webhook_deliveries_webhook_id", "webhook_id"),
        Index("ix_webhook_deliveries_finished_at", "finished_at"),
    )


class WebhookAttempt(Base):
    """One HTTP request made for a delivery: the delivery log."""

    __tablename__ = "webhook_attempts"

    # Monotonic: orders the log (newest first) and drives cursor paging.
    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("webhook_deliveries.id", name="fk_webhook_attempts_delivery_id",
                   ondelete="CASCADE"),
    )
    # Copied from the delivery so one index serves each log listing.
    webhook_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    owner: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What was decided: succeeded, retry, failed or disabled (a 410).
    outcome: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_webhook_attempts_owner_webhook_id_id", "owner", "webhook_id", "id"),
        Index("ix_webhook_attempts_delivery_id", "delivery_id"),
    )
