"""Webhook deliveries as plain functions: record, sign, send, decide, retry, recover.

The Celery tasks in :mod:`workers.webhook_tasks` only call these. Every step keeps its
state in ``webhook_deliveries`` first and publishes second, so a lost message or a dead
worker delays a delivery but never loses it (:func:`recover` finds it again).

A delivery attempt is claimed with one conditional ``UPDATE`` (``pending`` and the
expected attempt number), so duplicate messages and concurrent workers send it once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from core import webhook_signing
from core.db import Database
from core.models import Task, utcnow
from core.models_webhooks import (
    CallbackSecret,
    DeliveryStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from core.schemas import TaskSchema
from workers.events import DELIVER_TASK, WEBHOOKS_QUEUE
from workers.webhook_http import (  # noqa: F401  (re-exported)
    DEFAULT_RETRY_SCHEDULE,
    USER_AGENT,
    Outcome,
    SendResult,
    WebhookSettings,
    classify,
    describe,
    parse_schedule,
    retry_delay,
    send,
)

log = logging.getLogger(__name__)

# A pending delivery this many seconds overdue has lost its message; recover() re-sends it.
RECOVER_AFTER = 120.0
# How long a worker may hold an attempt beyond the request timeout before it counts as lost.
LEASE_MARGIN = 60.0
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
_task_schema = TaskSchema()


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


# --- recording events ----------------------------------------------------------------


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


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def build_payload(event: str, task: Task, timestamp: datetime) -> str:
    """The body: ``{"type", "timestamp", "data"}``, ``data`` as ``GET /tasks/<id>`` has it."""
    body = {"type": event, "timestamp": timestamp.isoformat(), "data": _task_schema.dump(task)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def enqueue_event(db: Database, celery_app: Celery, task_id: uuid.UUID,
                  event: str) -> list[uuid.UUID]:
    """Record one delivery per destination that wants ``event``, then queue them.

    Returns the delivery ids. One indexed query when nobody is interested.
    """
    with db.session() as session:
        rows = session.execute(
            select(Task.owner, Task.data, Webhook.id, Webhook.events)
            .outerjoin(Webhook, and_(Webhook.owner == Task.owner, Webhook.enabled.is_(True)))
            .where(Task.id == task_id)
        ).all()
    if not rows:
        return []
    owner, data = rows[0][0], rows[0][1]
    targets: list[tuple[uuid.UUID | None, str | None]] = [
        (webhook_id, None) for _, _, webhook_id, events in rows
        if webhook_id is not None and wants(events, event)
    ]
    url = callback_url(data, event)
    if url is not None:
        targets.append((None, url))
    if not targets:
        return []
    now = utcnow()
    message_id = new_message_id()
    with db.transaction() as session:
        task = session.scalar(select(Task).where(Task.id == task_id))
        if task is None:  # deleted meanwhile
            return []
        body = build_payload(event, task, now)
        deliveries = [
            WebhookDelivery(
                id=uuid.uuid4(), message_id=message_id, webhook_id=webhook_id, url=target_url,
                owner=owner, event=event, task_id=task_id, payload=body,
                status=DeliveryStatus.PENDING.value, attempts=0, retry_from=1, due_at=now,
                created_at=now, updated_at=now,
            )
            for webhook_id, target_url in targets
        ]
        session.add_all(deliveries)
    for delivery in deliveries:
        publish(celery_app, delivery.id, 1)
    return [delivery.id for delivery in deliveries]


def publish(celery_app: Celery, delivery_id: uuid.UUID, attempt: int,
            countdown: float = 0.0) -> bool:
    """Queue attempt ``attempt`` of a delivery. False if the broker refused (recover() retries)."""
    try:
        celery_app.send_task(
            DELIVER_TASK,
            args=[str(delivery_id), attempt],
            queue=WEBHOOKS_QUEUE,
            countdown=countdown if countdown > 0 else None,
            retry=True,
            retry_policy=_PUBLISH_RETRY,
        )
    except Exception as exc:
        log.warning("could not queue webhook delivery %s attempt %s: %s", delivery_id, attempt, exc)
        return False
    return True


# --- one attempt ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    """A delivery this worker now owns, with where to send it or why it cannot be sent."""

    delivery: WebhookDelivery
    url: str = ""
    secrets: list[str] = field(default_factory=list)
    refusal: str | None = None


def _claim(db: Database, delivery_id: uuid.UUID, attempt: int, lease: float) -> _Claimed | None:
    """Move the delivery to ``sending`` if it waits for ``attempt``; None if it does not."""
    now = utcnow()
    with db.transaction() as session:
        delivery = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id,
                   WebhookDelivery.status == DeliveryStatus.PENDING.value,
                   WebhookDelivery.attempts == attempt - 1)
            .values(status=DeliveryStatus.SENDING.value, attempts=attempt, updated_at=now,
                    due_at=now + timedelta(seconds=lease))
            .returning(WebhookDelivery)
            .execution_options(synchronize_session=False, populate_existing=True)
        ).scalar_one_or_none()
        if delivery is None:
            return None
        if delivery.webhook_id is None:  # a one-off callback: signed after the transaction
            return _Claimed(delivery, delivery.url or "")
        webhook = session.get(Webhook, delivery.webhook_id)
        if webhook is None or not webhook.enabled:
            reason = (webhook.disabled_reason if webhook is not None else None) or "by its owner"
            return _Claimed(delivery, refusal=f"subscription is disabled ({reason})")
        return _Claimed(delivery, webhook.url, active_secrets(webhook, now))


def deliver(db: Database, celery_app: Celery, delivery_id: uuid.UUID | str, attempt: int,
            settings: WebhookSettings) -> str:
    """Make attempt ``attempt`` of a delivery and record it. Returns the outcome.

    ``skipped`` when the delivery is not waiting for that attempt (a duplicate message,
    a finished or deleted delivery).
    """
    delivery_id = uuid.UUID(str(delivery_id))
    claimed = _claim(db, delivery_id, attempt, settings.timeout + LEASE_MARGIN)
    if claimed is None:
        return "skipped"
    delivery = claimed.delivery
    if claimed.refusal is not None:
        return _finish(db, celery_app, delivery, attempt, SendResult(error=claimed.refusal),
                       settings)
    secrets = claimed.secrets
    if delivery.webhook_id is None:
        secrets = active_secrets(callback_secret(db, delivery.owner), utcnow())
    body = delivery.payload.encode()
    headers = {
        **webhook_signing.signed_headers(secrets, delivery.message_id, int(time.time()), body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    result = send(claimed.url, headers, body, settings)
    return _finish(db, celery_app, delivery, attempt, result, settings)


def _finish(db: Database, celery_app: Celery, delivery: WebhookDelivery, attempt: int,
            result: SendResult, settings: WebhookSettings) -> str:
    """Record the attempt, move the delivery on, and queue the retry if one is due."""
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
    if outcome is Outcome.RETRY:
        publish(celery_app, delivery.id, attempt + 1, countdown=delay or 0)
    return outcome.value


# --- redelivery and recovery ---------------------------------------------------------


def redeliver(db: Database, celery_app: Celery, delivery_id: uuid.UUID) -> WebhookDelivery | None:
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
        publish(celery_app, delivery.id, delivery.attempts + 1)
    return delivery


@dataclass
class RecoveryReport:
    lost_attempts: int = 0
    republished: int = 0
    deleted: int = 0


def recover(db: Database, celery_app: Celery, settings: WebhookSettings,
            limit: int = 500) -> RecoveryReport:
    """Repair what crashes leave behind, and drop old finished deliveries.

    - ``sending`` past its lease: the worker died mid-attempt; count the attempt as a
      connection failure (retry or give up as usual).
    - ``pending`` long overdue: its Celery message was lost; publish it again.
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
        overdue = list(session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING.value,
                   WebhookDelivery.due_at < now - timedelta(seconds=RECOVER_AFTER))
            .limit(limit)
        ))
    for delivery in lost:
        result = SendResult(error="the delivery worker was lost during the attempt",
                            retryable=True)
        if _finish(db, celery_app, delivery, delivery.attempts, result, settings) != "skipped":
            report.lost_attempts += 1
    for delivery in overdue:
        with db.transaction() as session:  # so the next pass waits RECOVER_AFTER again
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery.id,
                       WebhookDelivery.status == DeliveryStatus.PENDING.value)
                .values(due_at=now)
                .execution_options(synchronize_session=False)
            )
        if publish(celery_app, delivery.id, delivery.attempts + 1):
            report.republished += 1
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
    if report.lost_attempts or report.republished or report.deleted:
        log.info("webhook recovery: %s", report)
    return report
