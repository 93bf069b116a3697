"""The task's public JSON shape, shared by the API and webhook payloads."""

from __future__ import annotations

from marshmallow import Schema, fields

from core.status import TaskStatus

STATUSES = [s.value for s in TaskStatus]


class TaskSchema(Schema):
    """A task as ``GET /tasks/<id>`` returns it."""

    id = fields.UUID(required=True)
    endpoint = fields.String(required=True)
    data = fields.Raw(required=True)
    status = fields.String(required=True, metadata={"enum": STATUSES})
    result = fields.Raw(allow_none=True)
    error = fields.Raw(allow_none=True)
    progress = fields.Integer()
    priority = fields.Integer()
    retry_count = fields.Integer()
    attempts = fields.Integer()
    queue = fields.String(allow_none=True)
    device = fields.String(allow_none=True)
    worker = fields.String(allow_none=True)
    created_at = fields.DateTime()
    assigned_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()
