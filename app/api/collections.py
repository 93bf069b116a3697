"""``/collections``: collections, their indexed media, and their search. Owner-scoped.

Another owner's collection does not exist for you (404); two owners may use the same
``collection_id``. Media get into a collection through ``POST /index``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.api.search import run_search
from app.auth import current_principal
from app.bodies import load_args, load_json
from app.errors import APIError, not_found
from app.extensions import db
from app.openapi import doc
from app.schemas_collections import (
    ID_RULE,
    CollectionCreate,
    CollectionListSchema,
    CollectionSchema,
    CollectionUpdate,
    IndexedMediaSchema,
    MediaListSchema,
    MediaSummarySchema,
    PageArgs,
    SearchRequest,
    SearchResultsSchema,
    SegmentSchema,
    is_valid_id,
)
from core import collections_store as store
from core.models import utcnow
from core.models_collections import Collection, CollectionMedia, Segment

bp = Blueprint("collections", __name__, url_prefix="/collections")
collection_schema = CollectionSchema()
media_schema = MediaSummarySchema()
segment_schema = SegmentSchema()
create_request = CollectionCreate()
update_request = CollectionUpdate()
search_request = SearchRequest()
page_args = PageArgs()


def _checked_id(value: str, what: str) -> str:
    if not is_valid_id(value):
        raise APIError(400, "validation_error", f"invalid {what}: must be {ID_RULE}",
                       {what: [f"must be {ID_RULE}"]})
    return value


def owned_collection(session, collection_id: str) -> Collection:
    """The caller's collection, or 404."""
    _checked_id(collection_id, "collection_id")
    collection = store.find_collection(session, current_principal().owner, collection_id)
    if collection is None:
        raise not_found("collection")
    return collection


def owned_media(session, collection: Collection, media_id: str) -> CollectionMedia:
    _checked_id(media_id, "media_id")
    media = store.find_media(session, collection.id, media_id)
    if media is None:
        raise not_found("media")
    return media


def _dump_collection(session, collection: Collection) -> dict:
    return _dump_collections(session, [collection])[0]


def _dump_collections(session, collections: list[Collection]) -> list[dict]:
    counts = store.counts(session, [c.id for c in collections])
    bodies = collection_schema.dump(collections, many=True)
    for body, collection in zip(bodies, collections, strict=True):
        body["media_count"], body["segment_count"] = counts[collection.id]
    order = list(collection_schema.fields)
    return [dict(sorted(body.items(), key=lambda item: order.index(item[0])))
            for body in bodies]


def _dump_media(media: CollectionMedia, collection: Collection) -> dict:
    body = media_schema.dump(media)
    body["collection_id"] = collection.collection_id
    return body


# --- collections ---------------------------------------------------------------------


@bp.post("")
@doc("Create a collection", tag="Collections", body=CollectionCreate,
     responses={201: CollectionSchema})
def create_collection():
    body = load_json(create_request)
    now = utcnow()
    collection = Collection(owner=current_principal().owner,
                            collection_id=body["collection_id"],
                            name=body["name"] or body["collection_id"],
                            description=body["description"], version=0, reset_version=0,
                            created_at=now, updated_at=now)
    try:
        with db.transaction() as session:
            session.add(collection)
    except IntegrityError:
        raise APIError(409, "conflict",
                       f"collection {body['collection_id']!r} already exists") from None
    with db.session() as session:
        return jsonify(_dump_collection(session, collection)), 201


@bp.get("")
@doc("List collections", tag="Collections", query=PageArgs,
     responses={200: CollectionListSchema})
def list_collections():
    """The caller's collections by ``collection_id``, ``page``/``per_page`` as ``/tasks``."""
    args = load_args(page_args)
    query = (select(Collection).where(Collection.owner == current_principal().owner)
             .order_by(Collection.collection_id)
             .offset((args["page"] - 1) * args["per_page"]).limit(args["per_page"]))
    with db.session() as session:
        collections = list(session.scalars(query))
        return jsonify({"collections": _dump_collections(session, collections)})


@bp.get("/<collection_id>")
@doc("Get a collection", tag="Collections", responses={200: CollectionSchema})
def get_collection(collection_id: str):
    with db.session() as session:
        return jsonify(_dump_collection(session, owned_collection(session, collection_id)))


@bp.patch("/<collection_id>")
@doc("Rename or describe a collection", tag="Collections", body=CollectionUpdate,
     responses={200: CollectionSchema})
def update_collection(collection_id: str):
    body = load_json(update_request)
    with db.transaction() as session:
        collection = owned_collection(session, collection_id)
        for field, value in body.items():
            setattr(collection, field, value)
        collection.updated_at = utcnow()
    with db.session() as session:
        return jsonify(_dump_collection(session, collection))


@bp.delete("/<collection_id>")
@doc("Delete a collection with its media and segments", tag="Collections",
     responses={200: CollectionSchema})
def delete_collection(collection_id: str):
    """Delete the collection with all its media and segments."""
    with db.transaction() as session:
        collection = owned_collection(session, collection_id)
        body = _dump_collection(session, collection)
        store.delete_collection(session, collection)
    return jsonify(body)


# --- media ---------------------------------------------------------------------------


@bp.get("/<collection_id>/media")
@doc("List the media indexed in a collection", tag="Collections", query=PageArgs,
     responses={200: MediaListSchema})
def list_media(collection_id: str):
    """Indexed media, oldest first, ``page``/``per_page`` as ``/tasks``."""
    args = load_args(page_args)
    with db.session() as session:
        collection = owned_collection(session, collection_id)
        media = session.scalars(
            select(CollectionMedia).where(CollectionMedia.collection_pk == collection.id)
            .order_by(CollectionMedia.id)
            .offset((args["page"] - 1) * args["per_page"]).limit(args["per_page"]))
        return jsonify({"media": [_dump_media(m, collection) for m in media]})


@bp.get("/<collection_id>/media/<media_id>")
@doc("Get an indexed media item with its segments", tag="Collections",
     responses={200: IndexedMediaSchema})
def get_media(collection_id: str, media_id: str):
    """One media item with its ``segments`` (``id``, ``start``, ``end``, ``text``)."""
    with db.session() as session:
        collection = owned_collection(session, collection_id)
        media = owned_media(session, collection, media_id)
        segments = list(session.scalars(
            select(Segment).where(Segment.media_pk == media.id).order_by(Segment.idx)))
        body = _dump_media(media, collection)
        body["segments"] = segment_schema.dump(segments, many=True)
    return jsonify(body)


@bp.delete("/<collection_id>/media/<media_id>")
@doc("Remove a media item and its segments", tag="Collections",
     responses={200: MediaSummarySchema})
def delete_media(collection_id: str, media_id: str):
    """Remove a media item and its segments from the collection."""
    with db.transaction() as session:
        collection = owned_collection(session, collection_id)
        media = owned_media(session, collection, media_id)
        body = _dump_media(media, collection)
        store.delete_media(session, collection, media)
    return jsonify(body)


# --- search --------------------------------------------------------------------------


@bp.post("/<collection_id>/search")
@doc("Search a collection by meaning and words", tag="Collections", body=SearchRequest,
     responses={200: SearchResultsSchema})
def search_collection(collection_id: str):
    """The ``top_k`` segments that best match ``query``, best first (``mode``: semantic,
    keyword or hybrid, the default)."""
    body = load_json(search_request)
    return jsonify({"results": run_search(
        lambda session: [owned_collection(session, collection_id).id], body)})
