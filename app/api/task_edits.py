"""``PATCH /tasks/<id>``: corrections kept with a finished transcription (speaker names,
segment texts), applied to every download and, for ``/index`` tasks, to the passages
their collection stores (text at once, vectors re-embedded by a worker)."""

from __future__ import annotations

import uuid

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, fields, validate

from app.api.tasks import owned_task
from app.bodies import load_json
from app.errors import APIError
from app.extensions import celery, db
from app.openapi import doc
from core import task_edits

bp = Blueprint("task_edits", __name__, url_prefix="/tasks")


class SegmentEditSchema(Schema):
    index = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    text = fields.String(required=True, validate=validate.Length(min=1, max=5000))


class TaskEditsSchema(Schema):
    """Merged into the task's edits: a speaker named ``""`` goes back to its label."""

    speaker_names = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)),
                                values=fields.String(validate=validate.Length(max=200)),
                                load_default=dict, validate=validate.Length(max=100))
    segments = fields.List(fields.Nested(SegmentEditSchema), load_default=list,
                           validate=validate.Length(max=1000))


class EditsSchema(Schema):
    speaker_names = fields.Dict(keys=fields.String(), values=fields.String())
    segments = fields.Dict(keys=fields.String(), values=fields.String(),
                           metadata={"description": "segment index -> corrected text"})


def transcript_of(task) -> dict:
    if task.endpoint not in ("/analyze", "/index"):
        raise APIError(400, "not_a_transcription", "this task did not transcribe media")
    if task.status != "completed":
        raise APIError(409, "not_ready", f"the transcript is not ready: task is {task.status}")
    return task.result.get("transcript", task.result) if task.endpoint == "/index" \
        else task.result


@bp.patch("/<uuid:task_id>")
@doc("Correct a transcript: speaker names, segment texts", tag="Tasks", body=TaskEditsSchema,
     responses={200: EditsSchema})
def patch_task(task_id: uuid.UUID):
    """Keep corrections with the task; ``GET /tasks/<id>/transcript`` (every format)
    applies them. Answers all the task's edits."""
    changed = 0
    with db.transaction() as session:
        task = owned_task(session, task_id)
        body = load_json(TaskEditsSchema())
        segments = transcript_of(task).get("segments") or []
        wrong = [e["index"] for e in body["segments"] if e["index"] >= len(segments)]
        if wrong:
            raise APIError(400, "validation_error", f"the transcript has {len(segments)} "
                           f"segments", {"segments": [f"no segment {i}" for i in wrong]})
        edits = task_edits.save(session, task.id, body["speaker_names"],
                                {str(e["index"]): e["text"] for e in body["segments"]})
        if task.endpoint == "/index" and body["segments"]:
            fixed = task_edits.apply(transcript_of(task), edits)
            changed = task_edits.update_passages(session, task.id, fixed.get("segments") or [])
        queue = task.queue or current_app.config["HARK"].default_device
    if changed:  # committed: a worker re-embeds them for the collection's search
        task_edits.request_reembed(celery, task_id, queue)
    return jsonify(edits)
