"""Webhook deliveries as plain functions: claim, sign, send, decide, retry, recover.

Deliveries are written by the status moves themselves (the transactional outbox,
:mod:`core.task_sql`): a delivery exists if and only if its move committed. The relay
(:mod:`workers.relay`) claims due ones with ``FOR UPDATE SKIP LOCKED`` (so concurrent
relays send each attempt once), sends them, and records the outcome; a retry is the
same row due again later. The body is built from the task row when it is sent, so a
large result is not copied once per subscriber. A relay that dies mid-attempt leaves a
``sending`` row past its lease, which :func:`recover` counts as a failed attempt.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from core import webhook_signing
from core.db import Database
from core.models import Task, utcnow
from core.models_webhooks import (
    DeliveryStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from core.schemas import TaskSchema
from core.webhooks import (  # noqa: F401  (re-exported)
    DEFAULT_RETRY_SCHEDULE,
    WebhookSettings,
    active_secrets,
    callback_secret,
    callback_url,
    parse_schedule,
    redeliver,
    rotate_secret,
    wake_relay,
    wants,
)
from workers.webhook_http import (  # noqa: F401  (re-exported)
    USER_AGENT,
    Outcome,
    SendResult,
    classify,
    describe,
    retry_delay,
    send,
)

log = logging.getLogger(__name__)

# How long a worker may hold an attempt beyond the request timeout before it counts as lost.
LEASE_MARGIN = 60.0
_task_schema = TaskSchema()


# --- recording events ----------------------------------------------------------------


def build_payload(event: str, task: Task, timestamp: datetime) -> str:
    """The body: ``{"type", "timestamp", "data"}``, ``data`` as ``GET /tasks/<id>`` has it."""
    body = {"type": event, "timestamp": timestamp.isoformat(), "data": _task_schema.dump(task)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


# --- one attempt ---------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery this relay now owns, with where to send it and what, or why not."""

    delivery: WebhookDelivery
    url: str = ""
    secrets: list[str] = field(default_factory=list)
    body: bytes = b""
    refusal: str | None = None


def claim_due(db: Database, limit: int, lease: float) -> list[WebhookDelivery]:
    """Move up to ``limit`` due ``pending`` deliveries to ``sending`` (their attempt
    counted, a lease of ``lease`` seconds) and return them. Rows another relay holds are
    skipped, not waited for."""
    if limit <= 0:
        return []
    now = utcnow()
    due = (select(WebhookDelivery.id)
           .where(WebhookDelivery.status == DeliveryStatus.PENDING.value,
                  WebhookDelivery.due_at <= now)
           .order_by(WebhookDelivery.due_at)
           .limit(limit)
           .with_for_update(skip_locked=True))
    with db.transaction() as session:
        return list(session.scalars(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due.scalar_subquery()),
                   WebhookDelivery.status == DeliveryStatus.PENDING.value)
            .values(status=DeliveryStatus.SENDING.value, attempts=WebhookDelivery.attempts + 1,
                    updated_at=now, due_at=now + timedelta(seconds=lease))
            .returning(WebhookDelivery)
            .execution_options(synchronize_session=False, populate_existing=True)))


def next_due(db: Database) -> datetime | None:
    """When the earliest waiting delivery is due (None: none waits)."""
    with db.session() as session:
        return session.scalar(select(func.min(WebhookDelivery.due_at))
                              .where(WebhookDelivery.status == DeliveryStatus.PENDING.value))


def prepare(db: Database, delivery: WebhookDelivery) -> Claimed:
    """Where ``delivery`` goes, signed with which secrets, and its body (from the task row
    as it is now), or why it cannot be sent."""
    now = utcnow()
    with db.session() as session:
        task = session.scalar(select(Task).where(Task.id == delivery.task_id))
        if task is None:
            return Claimed(delivery, refusal="the task was deleted before this event was sent")
        body = build_payload(delivery.event, task, delivery.created_at).encode()
        if delivery.webhook_id is None:  # a one-off callback
            secrets = active_secrets(callback_secret(db, delivery.owner), now)
            return Claimed(delivery, delivery.url or "", secrets, body)
        webhook = session.get(Webhook, delivery.webhook_id)
        if webhook is None or not webhook.enabled:
            reason = (webhook.disabled_reason if webhook is not None else None) or "by its owner"
            return Claimed(delivery, refusal=f"subscription is disabled ({reason})")
        return Claimed(delivery, webhook.url, active_secrets(webhook, now), body)


def deliver(db: Database, delivery: WebhookDelivery, settings: WebhookSettings) -> str:
    """Make the claimed attempt of ``delivery`` and record it. Returns the outcome."""
    claimed = prepare(db, delivery)
    attempt = delivery.attempts
    if claimed.refusal is not None:
        return _finish(db, delivery, attempt, SendResult(error=claimed.refusal), settings)
    headers = {
        **webhook_signing.signed_headers(claimed.secrets, delivery.message_id,
                                         int(time.time()), claimed.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    result = send(claimed.url, headers, claimed.body, settings)
    return _finish(db, delivery, attempt, result, settings)


def _finish(db: Database, delivery: WebhookDelivery, attempt: int, result: SendResult,
            settings: WebhookSettings) -> str:
    """Record the attempt and move the delivery on: due again later for a retry, or
    finished."""
    now = utcnow()
    outcome = classify(result)
    error = describe(result)
    delay = None
    if outcome is Outcome.RETRY:
        delay = retry_delay(settings, attempt - delivery.retry_from, result.retry_after)
        if delay is None:
            outcome = Outcome.FAILED
            error = f"{error}; gave up after {attempt - delivery.retry_from + 1} attempts"
    if outcome is Outcome.RETRY:
        values: dict[str, Any] = dict(status=DeliveryStatus.PENDING.value,
                                      due_at=now + timedelta(seconds=delay or 0))
    else:
        final = DeliveryStatus.SUCCEEDED if outcome is Outcome.SUCCEEDED else DeliveryStatus.FAILED
        values = dict(status=final.value, due_at=None, finished_at=now)
    with db.transaction() as session:
        moved = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id,
                   WebhookDelivery.status == DeliveryStatus.SENDING.value,
                   WebhookDelivery.attempts == attempt)
            .values(last_status_code=result.status_code, last_error=error, updated_at=now,
                    **values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:  # deleted with its subscription, or taken over by recover()
            return "skipped"
        session.add(WebhookAttempt(
            delivery_id=delivery.id, webhook_id=delivery.webhook_id, owner=delivery.owner,
            attempt=attempt, status_code=result.status_code, duration_ms=result.duration_ms,
            error=error, outcome=outcome.value, created_at=now,
        ))
        if outcome is Outcome.DISABLED and delivery.webhook_id is not None:
            session.execute(
                update(Webhook).where(Webhook.id == delivery.webhook_id)
                .values(enabled=False, updated_at=now,
                        disabled_reason="the endpoint answered 410 Gone")
            )
    log.info("webhook delivery %s (%s, %s) attempt %s: %s%s", delivery.id, delivery.event,
             delivery.message_id, attempt, outcome.value, f" ({error})" if error else "")
    return outcome.value


# --- redelivery and recovery ---------------------------------------------------------


@dataclass
class RecoveryReport:
    lost_attempts: int = 0
    deleted: int = 0


def recover(db: Database, settings: WebhookSettings, limit: int = 500) -> RecoveryReport:
    """Repair what crashed relays leave behind, and drop old finished deliveries.

    A ``sending`` row past its lease: the relay died mid-attempt; the attempt counts as
    a connection failure (retried or given up as usual).
    """
    report = RecoveryReport()
    now = utcnow()
    with db.session() as session:
        lost = list(session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.SENDING.value,
                   WebhookDelivery.due_at < now)
            .limit(limit)
        ))
    for delivery in lost:
        result = SendResult(error="the delivery worker was lost during the attempt",
                            retryable=True)
        if _finish(db, delivery, delivery.attempts, result, settings) != "skipped":
            report.lost_attempts += 1
    cutoff = now - timedelta(days=settings.retention_days)
    with db.transaction() as session:
        old = (select(WebhookDelivery.id)
               .where(WebhookDelivery.finished_at < cutoff)
               .limit(limit * 10)
               .scalar_subquery())
        report.deleted = session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.id.in_(old))
            .execution_options(synchronize_session=False)
        ).rowcount
    if report.lost_attempts or report.deleted:
        log.info("webhook recovery: %s", report)
    return report
