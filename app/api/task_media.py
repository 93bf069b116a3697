"""``/tasks/<id>/media`` (the task's media, with HTTP Range) and ``/tasks/<id>/links``
(short-lived signed URLs for the browser's ``<audio>`` and ``EventSource``)."""

from __future__ import annotations

import re
import uuid

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import Schema, fields

from app.auth import current_principal
from app.errors import APIError, not_found
from app.extensions import db
from app.openapi import doc
from app.signed_links import TOKEN_PARAM, make_token, signed_ok
from core import media_read
from core.task_reads import read_task

bp = Blueprint("task_media", __name__, url_prefix="/tasks")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class TaskLinksSchema(Schema):
    media_url = fields.String(required=True)
    stream_url = fields.String(required=True)
    expires_at = fields.Integer(required=True, metadata={"description": "Unix seconds"})


def _blob_of(task_id: uuid.UUID) -> media_read.BlobLayout:
    task = read_task(db, task_id, owner=current_principal().owner)
    if task is None:
        raise not_found("task")
    blob_id = ((task.data or {}).get("media") or {}).get("blob_id")
    blob = media_read.layout(db, uuid.UUID(blob_id)) if blob_id else None
    if blob is None or blob.owner != task.owner:
        raise not_found("media")  # a URL task not fetched yet, or purged by retention
    return blob


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range; None for the whole file; 416 if
    the range is malformed or outside the file."""
    if not header or not header.strip().lower().startswith("bytes="):
        return None  # no range, or a unit we do not serve: the whole file (RFC 9110)
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    first = last = None
    if match and (match.group(1) or match.group(2)):
        if match.group(1):  # "a-" or "a-b"
            first = int(match.group(1))
            last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        elif int(match.group(2)) > 0:  # "-n": the last n bytes
            first, last = max(0, size - int(match.group(2))), size - 1
    if first is None or first >= size or last < first:
        raise APIError(416, "range_not_satisfiable",
                       f"the range {header!r} is not within the media's {size} bytes",
                       headers={"Content-Range": f"bytes */{size}"})
    return first, last


@bp.get("/<uuid:task_id>/media")
@signed_ok
@doc("The task's media, with Range support", tag="Tasks",
     responses={200: "application/octet-stream", 206: "application/octet-stream",
                416: None})
def get_media(task_id: uuid.UUID):
    """The uploaded (or, for a URL task, the fetched) media, read from the database a
    chunk at a time. Honours one ``Range: bytes=`` range (206 + ``Content-Range``;
    416 outside the file). 404 until a URL task's media is fetched and once retention
    purged it. Takes the key header or a signed ``?token=`` from ``/links``."""
    blob = _blob_of(task_id)
    wanted = parse_range(request.headers.get("Range"), blob.size)
    first, last = wanted or (0, blob.size - 1)
    database = current_app.extensions["hark"]["db"]  # the body is read after the view returns
    response = Response(media_read.read_range(database, blob, first, last) if blob.size
                        else b"",
                        status=206 if wanted else 200,
                        content_type=blob.content_type or "application/octet-stream",
                        direct_passthrough=True)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Content-Length"] = str(last - first + 1 if blob.size else 0)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["ETag"] = f'"{blob.id}"'
    if wanted:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{blob.size}"
    return response


@bp.post("/<uuid:task_id>/links")
@doc("Signed URLs for the task's media and event stream", tag="Tasks",
     responses={200: TaskLinksSchema, 503: None})
def make_links(task_id: uuid.UUID):
    """URLs that open ``/media`` and ``/stream`` of this task without the key header
    (for ``<audio>`` and ``EventSource``), valid for ``SIGNED_URL_SECONDS``."""
    owner = current_principal().owner
    if read_task(db, task_id, owner=owner) is None:
        raise not_found("task")
    token, expires = make_token(owner, task_id,
                                current_app.config["HARK"].signed_url_seconds)
    base = f"/tasks/{task_id}"
    return jsonify({"media_url": f"{base}/media?{TOKEN_PARAM}={token}",
                    "stream_url": f"{base}/stream?{TOKEN_PARAM}={token}",
                    "expires_at": expires})
