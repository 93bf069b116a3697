"""Marshmallow schemas of ``/webhooks`` (requests in, responses out). Unknown fields: 400."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate

from app.schemas import HTTP_URL, StrictBoolean
from core.events import ALL_EVENTS
from core.models_webhooks import URL_MAX

EVENT = fields.String(validate=validate.OneOf(ALL_EVENTS))
MAX_GRACE_SECONDS = 7 * 24 * 3600


def _unique(events: list[str] | None) -> list[str] | None:
    return None if events is None else list(dict.fromkeys(events))


class _Url(fields.String):
    """An http(s) URL of at most 2048 characters (where it may point is checked later)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(validate=validate.Length(min=1, max=URL_MAX), metadata=HTTP_URL,
                         **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > URL_MAX:  # as sent, before the surrounding blanks are dropped
            raise ValidationError(f"Longer than maximum length {URL_MAX}.")
        value = value.strip()
        if not value.lower().startswith(("http://", "https://")):
            raise ValidationError("must be an http or https URL")
        return value


class WebhookCreate(Schema):
    """``POST /webhooks``. No ``events`` (or null) subscribes to every event."""

    url = _Url(required=True)
    events = fields.List(EVENT, validate=validate.Length(min=1), allow_none=True,
                         load_default=None)
    description = fields.String(validate=validate.Length(max=500), allow_none=True,
                                load_default=None)

    @post_load
    def _dedupe(self, data, **_kwargs):
        data["events"] = _unique(data["events"])
        return data


class WebhookUpdate(Schema):
    """``PUT /webhooks/<id>``: any of the fields; ``enabled: true`` re-enables after a 410."""

    url = _Url()
    events = fields.List(EVENT, validate=validate.Length(min=1), allow_none=True)
    description = fields.String(validate=validate.Length(max=500), allow_none=True)
    enabled = StrictBoolean()

    @post_load
    def _dedupe(self, data, **_kwargs):
        if "events" in data:
            data["events"] = _unique(data["events"])
        return data


class WebhookSchema(Schema):
    """A subscription as the API shows it (the secret only on create and rotate)."""

    id = fields.UUID(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), allow_none=True,
                         metadata={"description": "null: every event"})
    description = fields.String(allow_none=True)
    enabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    previous_secret_expires_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class WebhookWithSecretSchema(WebhookSchema):
    secret = fields.String(required=True)


class RotateSecretRequest(Schema):
    """How long the old secret keeps signing next to the new one (default: a day)."""

    grace_seconds = fields.Integer(strict=True,
                                   validate=validate.Range(min=0, max=MAX_GRACE_SECONDS),
                                   load_default=None)


class CallbackSecretSchema(Schema):
    secret = fields.String(required=True)
    previous_secret_expires_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class DeliveryListArgs(Schema):
    """Query of a delivery log: ``page``/``per_page``, or ``cursor`` for deep paging."""

    page = fields.Integer(validate=validate.Range(min=1, max=1_000_000), load_default=1)
    per_page = fields.Integer(validate=validate.Range(min=1, max=200), load_default=50)
    cursor = fields.String(load_default=None)


class AttemptSchema(Schema):
    """One attempt of the delivery log."""

    id = fields.Integer(required=True)
    delivery_id = fields.UUID(required=True)
    message_id = fields.String(metadata={"description": "the webhook-id header"})
    event = fields.String()
    task_id = fields.UUID()
    attempt = fields.Integer()
    status_code = fields.Integer(allow_none=True)
    duration_ms = fields.Integer()
    error = fields.String(allow_none=True)
    outcome = fields.String(metadata={"enum": ["succeeded", "retry", "failed", "disabled"]})
    delivery_status = fields.String(
        metadata={"enum": ["pending", "sending", "succeeded", "failed"]})
    created_at = fields.DateTime()


class WebhookListSchema(Schema):
    webhooks = fields.List(fields.Nested(WebhookSchema), required=True)


class DeliveryListSchema(Schema):
    deliveries = fields.List(fields.Nested(AttemptSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class RedeliverySchema(Schema):
    delivery_id = fields.UUID(required=True)
    message_id = fields.String(required=True)
    status = fields.String(required=True)
    attempt = fields.Integer(required=True)


class CallbackFields(Schema):
    """For analysis endpoints: a task's one-off callback, stored as-is in ``task.data``."""

    webhook = _Url(load_default=None, allow_none=True)
    webhook_events = fields.List(EVENT, validate=validate.Length(min=1), allow_none=True,
                                 load_default=None)
