"""Marshmallow schemas applied at the route boundary (requests in, responses out)."""

from __future__ import annotations

import base64
import binascii

from marshmallow import Schema, ValidationError, fields, validate

from core.schemas import STATUSES, TaskSchema

__all__ = ["TaskSchema"]
QUEUE_NAME = validate.Regexp(r"^[A-Za-z0-9_.:-]{1,100}$", error="invalid queue name")
# For the API document: URLs the platform fetches or calls are http(s) (checked again,
# with the addresses they reach, by core.netguard).
HTTP_URL = {"pattern": r"^\s*[Hh][Tt][Tt][Pp][Ss]?://"}


class StrictFloat(fields.Float):
    """A JSON number; strings and booleans are rejected rather than coerced."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """``true`` or ``false`` only (JSON bodies): not ``0``/``1``, which compare equal to
    them in Python."""

    truthy = {True}
    falsy = {False}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class TaskCountSchema(Schema):
    created = fields.Integer()
    assigned = fields.Integer()
    completed = fields.Integer()
    running = fields.Integer()
    failed = fields.Integer()
    not_finished = fields.Integer()
    total = fields.Integer(required=True)


class TaskListArgs(Schema):
    """Query of ``GET /tasks``: ``page`` for numbered pages, ``cursor`` for deep paging."""

    status = fields.String(validate=validate.OneOf(STATUSES), load_default=None)
    page = fields.Integer(validate=validate.Range(min=1, max=1_000_000), load_default=1)
    per_page = fields.Integer(validate=validate.Range(min=1, max=1000), load_default=100)
    cursor = fields.String(load_default=None)


class TaskListSchema(Schema):
    tasks = fields.List(fields.Nested(TaskSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class SubmitArgs(Schema):
    """Query of every analysis endpoint."""

    defer = fields.Boolean(load_default=None)
    timeout = fields.Float(validate=validate.Range(min=0, max=3600), load_default=None)


class DeferredSchema(Schema):
    """A task accepted for later (``?defer=true``, or a wait that timed out)."""

    task_id = fields.UUID(required=True)
    status = fields.String(required=True)


class FinishedTaskSchema(TaskSchema):
    """A task returned by a request that waited for it."""

    task_id = fields.UUID(required=True)


class TaskEventSchema(Schema):
    type = fields.String(required=True)
    at = fields.DateTime(required=True)
    details = fields.Raw(allow_none=True)


class TaskEventsSchema(Schema):
    events = fields.List(fields.Nested(TaskEventSchema), required=True)


class CheckSchema(Schema):
    ok = fields.Boolean(required=True)
    error = fields.String()


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "degraded"]})
    database = fields.Nested(CheckSchema, required=True)
    broker = fields.Nested(CheckSchema, required=True)


class WorkerSchema(Schema):
    id = fields.String(required=True)
    node = fields.String()
    host = fields.String()
    pid = fields.Integer()
    role = fields.String()
    device = fields.String()
    queues = fields.List(fields.String())
    models = fields.List(fields.String(), metadata={"description": "Loaded models"})
    available = fields.List(fields.String(),
                            metadata={"description": "Models this process can run"})
    current_task = fields.UUID(allow_none=True)
    tasks = fields.Dict(keys=fields.String(), values=fields.Integer())
    started_at = fields.DateTime()
    last_seen = fields.DateTime()


class WorkersSchema(Schema):
    workers = fields.List(fields.Nested(WorkerSchema), required=True)


class TranscriptArgs(Schema):
    format = fields.String(validate=validate.OneOf(["txt", "srt", "vtt", "json"]),
                           load_default="txt")


class RoutingFields(Schema):
    """Where and how urgently a task runs."""

    priority = fields.Integer(strict=True, validate=validate.Range(min=0, max=9), load_default=0)
    device = fields.String(validate=validate.OneOf(["cpu", "gpu"]), load_default=None)
    queue = fields.String(validate=QUEUE_NAME, load_default=None)


class SleepRequest(RoutingFields):
    seconds = StrictFloat(required=True, validate=validate.Range(min=0, max=3600))
    fail = StrictBoolean(load_default=False)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


MAX_SEQ = 2**63 - 1  # cursors hold BIGINT row numbers


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        seq = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeError):
        raise ValidationError({"cursor": ["invalid cursor"]}) from None
    if not 0 <= seq <= MAX_SEQ:
        raise ValidationError({"cursor": ["invalid cursor"]})
    return seq


class LimitsSchema(Schema):
    max_request_mb = fields.Integer(required=True)
    max_media_seconds = fields.Float(required=True)
    sync_timeout = fields.Float(required=True)


class MeSchema(Schema):
    owner = fields.String(required=True)
    name = fields.String(required=True)
    admin = fields.Boolean(required=True)
    limits = fields.Nested(LimitsSchema, required=True)


class ModelsSchema(Schema):
    models = fields.List(fields.String(), required=True)
    default = fields.String(required=True)
