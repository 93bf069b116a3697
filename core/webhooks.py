"""Webhook rules the API and the delivery relay share: the delivery settings, secrets
(rotation with a grace period, the owner's callback secret), event filters, and
redelivery. No HTTP sending here (that is the worker's ``workers.webhook_http``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError

from core import webhook_signing
from core.db import Database
from core.models import utcnow
from core.models_webhooks import CallbackSecret, DeliveryStatus, Webhook, WebhookDelivery
from core.task_sql import DELIVERIES_CHANNEL

# Standard Webhooks' suggestion: retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@dataclass(frozen=True)
class WebhookSettings:
    """Delivery settings, from ``WEBHOOK_*`` environment variables."""

    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    # Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
    retry_jitter: float = 0.2
    connect_timeout: float = 5.0
    # The whole request (connect, send, response and body), in seconds.
    timeout: float = 10.0
    max_response_bytes: int = 64 * 1024
    allow_private: bool = False
    # After a rotation the previous secret keeps signing this long (unless asked otherwise).
    secret_grace: float = 24 * 3600.0
    # Finished deliveries (and their attempts) are deleted after this many days.
    retention_days: float = 30.0
    max_per_owner: int = 100

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> WebhookSettings:
        def number(name: str, default: float) -> float:
            value = environ.get(name)
            return float(value) if value else default

        values: dict[str, Any] = dict(
            retry_schedule=parse_schedule(environ.get("WEBHOOK_RETRY_SCHEDULE", "")),
            retry_jitter=number("WEBHOOK_RETRY_JITTER", 0.2),
            connect_timeout=number("WEBHOOK_CONNECT_TIMEOUT", 5.0),
            timeout=number("WEBHOOK_TIMEOUT", 10.0),
            allow_private=environ.get("WEBHOOK_ALLOW_PRIVATE", "").strip().lower()
            in {"1", "true", "yes", "on"},
            secret_grace=number("WEBHOOK_SECRET_GRACE", 24 * 3600.0),
            retention_days=number("WEBHOOK_RETENTION_DAYS", 30.0),
            max_per_owner=int(number("WEBHOOK_MAX_PER_OWNER", 100)),
        )
        values.update(overrides)
        return cls(**values)


def parse_schedule(value: str) -> tuple[float, ...]:
    """``"5,300,1800"`` -> delays in seconds before each retry; empty means the default."""
    if not value.strip():
        return DEFAULT_RETRY_SCHEDULE
    delays = tuple(float(part) for part in value.split(",") if part.strip())
    if any(delay < 0 for delay in delays):
        raise ValueError("WEBHOOK_RETRY_SCHEDULE holds negative delays")
    return delays


# --- secrets -------------------------------------------------------------------------


def active_secrets(row: Webhook | CallbackSecret, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous during its grace."""
    found = [row.secret]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and expires > now:
        found.append(row.previous_secret)
    return found


def rotate_secret(row: Webhook | CallbackSecret, grace_seconds: float, now: datetime) -> None:
    """Give ``row`` a new secret; the old one keeps signing for ``grace_seconds``."""
    if grace_seconds > 0:
        row.previous_secret = row.secret
        row.previous_secret_expires_at = now + timedelta(seconds=grace_seconds)
    else:
        row.previous_secret = None
        row.previous_secret_expires_at = None
    row.secret = webhook_signing.generate_secret()
    row.updated_at = now


def callback_secret(db: Database, owner: str) -> CallbackSecret:
    """The owner's one-off callback secret, created on first use."""
    with db.session() as session:
        row = session.get(CallbackSecret, owner)
    if row is not None:
        return row
    now = utcnow()
    try:
        with db.transaction() as session:
            session.add(CallbackSecret(owner=owner, secret=webhook_signing.generate_secret(),
                                       created_at=now, updated_at=now))
    except IntegrityError:  # created by a concurrent request or worker
        pass
    with db.session() as session:
        row = session.get(CallbackSecret, owner)
    assert row is not None
    return row


# --- events and redelivery -----------------------------------------------------


def wants(events: Any, event: str) -> bool:
    """Whether an ``events`` filter (None: all) selects ``event``."""
    if events is None:
        return True
    if isinstance(events, str):
        events = [events]
    return isinstance(events, list) and event in events


def callback_url(data: Any, event: str) -> str | None:
    """The task's one-off ``webhook`` URL if it asked for ``event`` (``webhook_events``)."""
    if not isinstance(data, dict):
        return None
    url = data.get("webhook")
    if not isinstance(url, str) or not url:
        return None
    return url if wants(data.get("webhook_events"), event) else None


def wake_relay(session) -> None:
    """Wake the delivery relays when the caller's transaction commits."""
    session.execute(text(f"SELECT pg_notify('{DELIVERIES_CHANNEL}', '')"))


def redeliver(db: Database, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    """Send a finished delivery again (same webhook-id and body), with a fresh retry series.

    None if it is not finished (still pending or sending).
    """
    now = utcnow()
    with db.transaction() as session:
        delivery = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id,
                   WebhookDelivery.status.in_([DeliveryStatus.SUCCEEDED.value,
                                               DeliveryStatus.FAILED.value]))
            .values(status=DeliveryStatus.PENDING.value, retry_from=WebhookDelivery.attempts + 1,
                    due_at=now, finished_at=None, updated_at=now)
            .returning(WebhookDelivery)
            .execution_options(synchronize_session=False, populate_existing=True)
        ).scalar_one_or_none()
        if delivery is not None:
            wake_relay(session)
    return delivery
