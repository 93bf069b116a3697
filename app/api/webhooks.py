"""``/webhooks``: subscriptions, secrets, the delivery log and redelivery. Owner-scoped.

Another owner's webhook does not exist for you (404). One-off callbacks (a task's
``webhook`` URL) are signed with the owner's callback secret (``/webhooks/callback-secret``)
and logged under ``/webhooks/callbacks/deliveries``.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy import func, select

from app.auth import current_principal
from app.bodies import json_object, load_args, load_json
from app.errors import APIError, not_found
from app.extensions import db
from app.openapi import doc
from app.schemas import decode_cursor, encode_cursor
from app.schemas_webhooks import (
    AttemptSchema,
    CallbackSecretSchema,
    DeliveryListArgs,
    DeliveryListSchema,
    RedeliverySchema,
    RotateSecretRequest,
    WebhookCreate,
    WebhookListSchema,
    WebhookSchema,
    WebhookUpdate,
    WebhookWithSecretSchema,
)
from core import webhooks
from core.models import utcnow
from core.models_webhooks import CallbackSecret, Webhook, WebhookAttempt, WebhookDelivery
from core.netguard import UnsafeURLError, check_url
from core.webhook_signing import generate_secret

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
webhook_schema = WebhookSchema()
webhook_with_secret = WebhookWithSecretSchema()
callback_secret_schema = CallbackSecretSchema()
attempt_schema = AttemptSchema()
create_request = WebhookCreate()
update_request = WebhookUpdate()
rotate_request = RotateSecretRequest()
list_args = DeliveryListArgs()


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    state.app.config.setdefault("WEBHOOKS", webhooks.WebhookSettings.from_env())


def _settings() -> webhooks.WebhookSettings:
    return current_app.config["WEBHOOKS"]


def _safe_url(url: str) -> str:
    """Refuse URLs that are not http(s) or reach private addresses (unless allowed)."""
    try:
        check_url(url, allow_private=_settings().allow_private)
    except UnsafeURLError as exc:
        raise APIError(400, "unsafe_url", str(exc), {"url": [str(exc)]}) from None
    return url


def _owned(session, webhook_id: uuid.UUID) -> Webhook:
    webhook = session.scalar(
        select(Webhook).where(Webhook.id == webhook_id,
                              Webhook.owner == current_principal().owner)
    )
    if webhook is None:
        raise not_found("webhook")
    return webhook


def _rotate_body() -> dict[str, Any]:
    body = rotate_request.load(json_object()) if _has_body() else {"grace_seconds": None}
    if body["grace_seconds"] is None:
        body["grace_seconds"] = _settings().secret_grace
    return body


def _has_body() -> bool:
    return bool(request.get_data(cache=True).strip())


# --- subscriptions -------------------------------------------------------------------


@bp.post("")
@doc("Subscribe a URL to task events", tag="Webhooks", body=WebhookCreate,
     responses={201: WebhookWithSecretSchema})
def create_webhook():
    """Subscribe a URL; the answer holds the signing secret."""
    body = load_json(create_request)
    _safe_url(body["url"])
    owner = current_principal().owner
    now = utcnow()
    with db.transaction() as session:
        count = session.scalar(
            select(func.count()).select_from(Webhook).where(Webhook.owner == owner))
        if count >= _settings().max_per_owner:
            raise APIError(409, "limit_reached",
                           f"an owner may have at most {_settings().max_per_owner} webhooks")
        webhook = Webhook(id=uuid.uuid4(), owner=owner, url=body["url"],
                          description=body["description"], events=body["events"], enabled=True,
                          secret=generate_secret(), created_at=now, updated_at=now)
        session.add(webhook)
    return jsonify(webhook_with_secret.dump(webhook)), 201


@bp.get("")
@doc("List subscriptions", tag="Webhooks", responses={200: WebhookListSchema})
def list_webhooks():
    with db.session() as session:
        rows = session.scalars(
            select(Webhook).where(Webhook.owner == current_principal().owner)
            .order_by(Webhook.created_at, Webhook.id)
        )
        return jsonify({"webhooks": webhook_schema.dump(list(rows), many=True)})


@bp.get("/<uuid:webhook_id>")
@doc("Get a subscription", tag="Webhooks", responses={200: WebhookSchema})
def get_webhook(webhook_id: uuid.UUID):
    with db.session() as session:
        return jsonify(webhook_schema.dump(_owned(session, webhook_id)))


@bp.put("/<uuid:webhook_id>")
@doc("Change a subscription", tag="Webhooks", body=WebhookUpdate,
     responses={200: WebhookSchema})
def update_webhook(webhook_id: uuid.UUID):
    """Change the URL, events, description, or enable/disable it."""
    body = load_json(update_request)
    if "url" in body:
        _safe_url(body["url"])
    with db.transaction() as session:
        webhook = _owned(session, webhook_id)
        for name in ("url", "events", "description"):
            if name in body:
                setattr(webhook, name, body[name])
        if "enabled" in body:
            webhook.enabled = body["enabled"]
            webhook.disabled_reason = None if body["enabled"] else "disabled by its owner"
        webhook.updated_at = utcnow()
    return jsonify(webhook_schema.dump(webhook))


@bp.delete("/<uuid:webhook_id>")
@doc("Delete a subscription and its log", tag="Webhooks", responses={200: WebhookSchema})
def delete_webhook(webhook_id: uuid.UUID):
    """Delete the subscription with its delivery log; pending deliveries are dropped."""
    with db.transaction() as session:
        webhook = _owned(session, webhook_id)
        body = webhook_schema.dump(webhook)
        session.delete(webhook)
    return jsonify(body)


@bp.post("/<uuid:webhook_id>/rotate-secret")
@doc("Rotate a subscription's secret", tag="Webhooks", body=RotateSecretRequest,
     body_required=False,
     responses={200: WebhookWithSecretSchema})
def rotate_webhook_secret(webhook_id: uuid.UUID):
    """A new secret; the old one also signs for ``grace_seconds`` (default a day)."""
    body = _rotate_body()
    with db.transaction() as session:
        webhook = _owned(session, webhook_id)
        webhooks.rotate_secret(webhook, body["grace_seconds"], utcnow())
    return jsonify(webhook_with_secret.dump(webhook))


# --- one-off callbacks ---------------------------------------------------------------


@bp.get("/callback-secret")
@doc("The secret that signs one-off callbacks", tag="Webhooks",
     responses={200: CallbackSecretSchema})
def get_callback_secret():
    """The secret that signs this owner's one-off callbacks (created on first use)."""
    row = webhooks.callback_secret(db, current_principal().owner)
    return jsonify(callback_secret_schema.dump(row))


@bp.post("/callback-secret/rotate")
@doc("Rotate the callback secret", tag="Webhooks", body=RotateSecretRequest,
     body_required=False,
     responses={200: CallbackSecretSchema})
def rotate_callback_secret():
    body = _rotate_body()
    owner = current_principal().owner
    webhooks.callback_secret(db, owner)
    with db.transaction() as session:
        row = session.get(CallbackSecret, owner, with_for_update=True)
        webhooks.rotate_secret(row, body["grace_seconds"], utcnow())
    return jsonify(callback_secret_schema.dump(row))


# --- delivery log and redelivery -----------------------------------------------------


def _attempts(webhook_id: uuid.UUID | None):
    args = load_args(list_args)
    per_page = args["per_page"]
    query = (
        select(WebhookAttempt, WebhookDelivery.message_id, WebhookDelivery.event,
               WebhookDelivery.task_id, WebhookDelivery.status)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(WebhookAttempt.owner == current_principal().owner,
               WebhookAttempt.webhook_id == webhook_id if webhook_id is not None
               else WebhookAttempt.webhook_id.is_(None))
    )
    if args["cursor"]:
        query = query.where(WebhookAttempt.id < decode_cursor(args["cursor"]))
    else:
        query = query.offset((args["page"] - 1) * per_page)
    query = query.order_by(WebhookAttempt.id.desc()).limit(per_page)
    with db.session() as session:
        rows = session.execute(query).all()
    items = []
    for attempt, message_id, event, task_id, status in rows:
        item = {c: getattr(attempt, c) for c in ("id", "delivery_id", "attempt", "status_code",
                                                 "duration_ms", "error", "outcome",
                                                 "created_at")}
        item.update(message_id=message_id, event=event, task_id=task_id, delivery_status=status)
        items.append(item)
    next_cursor = encode_cursor(rows[-1][0].id) if len(rows) == per_page else None
    return jsonify({"deliveries": attempt_schema.dump(items, many=True),
                    "next_cursor": next_cursor})


def _redeliver(webhook_id: uuid.UUID | None, delivery_id: uuid.UUID):
    owner = current_principal().owner
    with db.session() as session:
        delivery = session.scalar(
            select(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.owner == owner,
                WebhookDelivery.webhook_id == webhook_id if webhook_id is not None
                else WebhookDelivery.webhook_id.is_(None))
        )
    if delivery is None:
        raise not_found("delivery")
    moved = webhooks.redeliver(db, delivery.id)
    if moved is None:
        raise APIError(409, "conflict",
                       f"only finished deliveries can be re-sent; this one is {delivery.status}")
    return jsonify({"delivery_id": str(moved.id), "message_id": moved.message_id,
                    "status": moved.status, "attempt": moved.attempts + 1}), 202


@bp.get("/<uuid:webhook_id>/deliveries")
@doc("A subscription's delivery log", tag="Webhooks", query=DeliveryListArgs,
     responses={200: DeliveryListSchema})
def list_deliveries(webhook_id: uuid.UUID):
    """Every attempt, newest first: status code, duration, error, event, task."""
    with db.session() as session:
        _owned(session, webhook_id)
    return _attempts(webhook_id)


@bp.post("/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver")
@doc("Re-send a finished delivery", tag="Webhooks", responses={202: RedeliverySchema})
def redeliver(webhook_id: uuid.UUID, delivery_id: uuid.UUID):
    """Send a finished delivery again: same webhook-id and body, fresh retries."""
    with db.session() as session:
        webhook = _owned(session, webhook_id)
    if not webhook.enabled:
        raise APIError(409, "conflict", "the webhook is disabled; enable it first")
    return _redeliver(webhook_id, delivery_id)


@bp.get("/callbacks/deliveries")
@doc("The one-off callbacks' delivery log", tag="Webhooks", query=DeliveryListArgs,
     responses={200: DeliveryListSchema})
def list_callback_deliveries():
    """The attempts of this owner's one-off callbacks, newest first."""
    return _attempts(None)


@bp.post("/callbacks/deliveries/<uuid:delivery_id>/redeliver")
@doc("Re-send a finished callback delivery", tag="Webhooks",
     responses={202: RedeliverySchema})
def redeliver_callback(delivery_id: uuid.UUID):
    return _redeliver(None, delivery_id)
