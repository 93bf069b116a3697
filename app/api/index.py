"""``POST /index``: transcribe media into a collection for semantic search (defer optional).

Takes the media and options of ``/analyze`` plus ``collection``, ``media_id`` (generated
when absent) and ``reindex_if_exists``. The collection must exist and, unless
``reindex_if_exists``, the media id be free: checked here before any upload is stored,
and again by the worker in the transaction that stores the segments.
"""

from __future__ import annotations

import functools
import uuid

from flask import Blueprint

from app.api.analyze import check_options, split_request
from app.auth import current_principal
from app.endpoints import DeferOption, Endpoint
from app.errors import APIError, not_found
from app.extensions import db
from app.idempotency import idempotent
from app.media_input import read_request
from app.openapi import doc
from app.schemas import DeferredSchema, FinishedTaskSchema, SubmitArgs
from app.schemas_collections import index_fields
from app.schemas_media import analyze_schema, upload_schema
from core import collections_store as store
from core.idempotency import Keyed

bp = Blueprint("index", __name__)
index_endpoint = Endpoint(
    name="index",
    path="/index",
    summary="Transcribe audio or video into a collection for semantic search",
    defer_option=DeferOption.OPTIONAL,
)
TARGET = ("collection", "media_id", "reindex_if_exists")


@functools.cache  # built once per variant, like the /analyze schema
def index_schema(strict: bool, with_media: bool):
    return analyze_schema(strict, with_media, extra=index_fields(strict))


def check_index_options(options: dict) -> None:
    """The /analyze checks, then: the collection exists and the media id is free."""
    check_options(options)
    options["media_id"] = options["media_id"] or uuid.uuid4().hex
    with db.session() as session:
        try:
            store.check_can_index(session, current_principal().owner, options["collection"],
                                  options["media_id"], options["reindex_if_exists"])
        except store.CollectionNotFound:
            raise not_found("collection") from None
        except store.MediaAlreadyIndexed:
            raise APIError(409, "conflict",
                           f"media {options['media_id']!r} is already indexed in collection "
                           f"{options['collection']!r}; send reindex_if_exists=true to "
                           "replace it") from None


@bp.post("/index")
@doc("Transcribe an audio or video file into a collection for search", tag="Collections",
     query=SubmitArgs, body=index_schema(True, True), multipart=upload_schema(index_schema),
     responses={200: FinishedTaskSchema, 202: DeferredSchema})
def index():
    """An ``Idempotency-Key`` header makes a repeat of this request (within 24 h) name
    the first one's task; the same key with another request is a 409."""
    return idempotent(index_endpoint, _index)


def _index(keyed: Keyed | None):
    options, media, upload = read_request(index_schema, check_index_options)
    target = {key: options.pop(key) for key in TARGET}
    options, routing, callback = split_request(options)
    data = {"media": media, "options": options, **target, **callback}
    return index_endpoint.submit(data, keyed=keyed, upload=upload, **routing)
