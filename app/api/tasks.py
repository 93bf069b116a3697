"""``/tasks``: count, list, get, delete (cancels), retry. Scoped to the caller's owner."""

from __future__ import annotations

import logging
import uuid

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select

from app import transcripts
from app.auth import current_principal
from app.bodies import load_args
from app.errors import APIError, not_found
from app.extensions import celery, db
from app.openapi import doc
from app.schemas import (
    TaskCountSchema,
    TaskEventsSchema,
    TaskListArgs,
    TaskListSchema,
    TaskSchema,
    TranscriptArgs,
    decode_cursor,
    encode_cursor,
)
from core import dispatch, lifecycle, media_store, task_edits
from core.models import Task, TaskCount, TaskEvent
from core.status import RETRYABLE, TaskStatus
from core.task_reads import read_task

log = logging.getLogger(__name__)
bp = Blueprint("tasks", __name__, url_prefix="/tasks")
task_schema = TaskSchema()
list_args = TaskListArgs()


def owned_task(session, task_id: uuid.UUID) -> Task:
    """The caller's task, or 404 (another owner's task does not exist for you)."""
    task = session.scalar(
        select(Task).where(Task.id == task_id, Task.owner == current_principal().owner)
    )
    if task is None:
        raise not_found("task")
    return task


@bp.get("/count")
@doc("Count tasks per status", tag="Tasks", responses={200: TaskCountSchema})
def count_tasks():
    """Tasks per status, read from trigger-maintained counters (no table scan)."""
    counts = {status.value: 0 for status in TaskStatus}
    with db.session() as session:
        rows = session.execute(
            select(TaskCount.status, func.sum(TaskCount.n))
            .where(TaskCount.owner == current_principal().owner)
            .group_by(TaskCount.status)
        )
        for status, n in rows:
            if status in counts:
                counts[status] = int(n)
    counts["total"] = sum(counts.values())
    return jsonify(counts)


@bp.get("")
@doc("List tasks, newest first", tag="Tasks", query=TaskListArgs,
     responses={200: TaskListSchema})
def list_tasks():
    """Newest first. ``page``/``per_page`` as in Aana; ``cursor`` pages at any depth."""
    args = load_args(list_args)
    query = select(Task).where(Task.owner == current_principal().owner)
    if args["status"]:
        query = query.where(Task.status == args["status"])
    per_page = args["per_page"]
    if args["cursor"]:
        query = query.where(Task.seq < decode_cursor(args["cursor"]))
    else:
        query = query.offset((args["page"] - 1) * per_page)
    query = query.order_by(Task.seq.desc()).limit(per_page)
    with db.session() as session:
        tasks = list(session.scalars(query))
    next_cursor = encode_cursor(tasks[-1].seq) if len(tasks) == per_page else None
    return jsonify({"tasks": task_schema.dump(tasks, many=True), "next_cursor": next_cursor})


@bp.get("/<uuid:task_id>")
@doc("Get a task", tag="Tasks", responses={200: TaskSchema})
def get_task(task_id: uuid.UUID):
    task = read_task(db, task_id, owner=current_principal().owner)
    if task is None:
        raise not_found("task")
    return jsonify(task_schema.dump(task))


@bp.get("/<uuid:task_id>/events")
@doc("A task's audit trail", tag="Tasks", responses={200: TaskEventsSchema})
def get_task_events(task_id: uuid.UUID):
    """The task's audit trail, oldest first: each status change and notable step."""
    with db.session() as session:
        task = owned_task(session, task_id)
        events = session.scalars(select(TaskEvent).where(TaskEvent.task_id == task.id)
                                 .order_by(TaskEvent.at, TaskEvent.id)).all()
    return jsonify({"events": [{"type": e.type, "at": e.at.isoformat(), "details": e.details}
                               for e in events]})


@bp.get("/<uuid:task_id>/transcript")
@doc("A finished transcript as txt, srt, vtt or json", tag="Tasks", query=TranscriptArgs,
     responses={200: {"text/plain": None, "application/x-subrip": None, "text/vtt": None,
                      "application/json": None}})
def get_transcript(task_id: uuid.UUID):
    """A finished transcription as ``txt`` (default), ``srt``, ``vtt`` or ``json``."""
    fmt = request.args.get("format", "txt")
    if fmt not in transcripts.FORMATS:
        raise APIError(400, "validation_error", f"format must be one of "
                       f"{', '.join(transcripts.FORMATS)}", {"format": ["unknown format"]})
    with db.session() as session:
        task = owned_task(session, task_id)
    if task.endpoint not in ("/analyze", "/index"):
        raise APIError(400, "not_a_transcription", "this task did not transcribe media")
    if task.status != "completed":
        raise APIError(409, "not_ready", f"the transcript is not ready: task is {task.status}")
    result = task.result.get("transcript", task.result) if task.endpoint == "/index" \
        else task.result
    with db.session() as session:  # corrections kept with the task (PATCH /tasks/<id>)
        result = task_edits.apply(result, task_edits.load(session, task.id))
    body, content_type = transcripts.render(result, fmt)
    return Response(body, content_type=content_type)


@bp.delete("/<uuid:task_id>")
@doc("Delete (and cancel) a task", tag="Tasks", responses={200: TaskSchema})
def delete_task(task_id: uuid.UUID):
    """Delete the task; if queued or running it is revoked and can never complete."""
    with db.transaction() as session:
        task = owned_task(session, task_id)
        body = task_schema.dump(task)
        lifecycle.delete_task(session, task.id)
        blob_id = ((task.data or {}).get("media") or {}).get("blob_id")
        if blob_id:  # the task's uploaded media goes with it
            media_store.delete_blob(session, uuid.UUID(blob_id))
    if body["status"] in ("created", "assigned", "running", "not_finished"):
        try:
            celery.control.revoke(str(task_id))
        except Exception as exc:  # the row is gone, so the task cannot complete anyway
            log.warning("could not broadcast revoke of %s: %s", task_id, exc)
    return jsonify(body)


@bp.post("/<uuid:task_id>/retry")
@doc("Retry a failed or not_finished task", tag="Tasks", responses={200: TaskSchema})
def retry_task(task_id: uuid.UUID):
    """Send a ``failed`` or ``not_finished`` task back to ``created`` and enqueue it."""
    with db.transaction() as session:
        task = owned_task(session, task_id)
        if task.status not in RETRYABLE:
            raise APIError(409, "conflict",
                           f"only failed or not_finished tasks can be retried; "
                           f"this one is {task.status}")
        task = lifecycle.reset_for_retry(session, task)
    if not dispatch.republish(db, celery, task):
        # The row is back in `created`: the sweeper publishes it once the broker returns.
        log.warning("retry of %s waits for the broker; the sweeper will enqueue it", task_id)
    with db.session() as session:
        return jsonify(task_schema.dump(owned_task(session, task_id)))
