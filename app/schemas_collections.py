"""Marshmallow schemas of ``/collections`` and ``/index`` (requests in, responses out).

Unknown fields are refused (400), as everywhere in the API.
"""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas import StrictBoolean
from core.models_collections import ID_PATTERN
from core.search_sql import MODES

_ID = re.compile(ID_PATTERN.rstrip("$") + r"\Z")  # "$" would also accept a final newline
ID_RULE = "1-100 letters, digits, '_' or '-'"
MAX_QUERY_CHARS = 2000
MAX_TOP_K = 100
MAX_SEARCH_COLLECTIONS = 100


def is_valid_id(value: str) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None


def _id_field(**kwargs) -> fields.String:
    return fields.String(validate=_check_id, metadata={"pattern": ID_PATTERN}, **kwargs)


def _check_id(value: str) -> None:
    if not is_valid_id(value):
        raise ValidationError(f"must be {ID_RULE}")


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


class CollectionCreate(Schema):
    """``POST /collections``; ``name`` defaults to the id."""

    collection_id = _id_field(required=True)
    name = fields.String(validate=[validate.Length(min=1, max=200), _not_blank],
                         load_default=None)
    description = fields.String(validate=validate.Length(max=2000), allow_none=True,
                                load_default=None)


class CollectionUpdate(Schema):
    """``PATCH /collections/<id>``: ``name`` and/or ``description``."""

    name = fields.String(validate=[validate.Length(min=1, max=200), _not_blank])
    description = fields.String(validate=validate.Length(max=2000), allow_none=True)

    @validates_schema
    def something_to_change(self, data, **_kwargs):
        if not data:
            raise ValidationError("give name and/or description")


class PageArgs(Schema):
    """``page``/``per_page``, as ``GET /tasks`` takes them."""

    page = fields.Integer(validate=validate.Range(min=1, max=1_000_000), load_default=1)
    per_page = fields.Integer(validate=validate.Range(min=1, max=1000), load_default=100)


class SearchRequest(Schema):
    """``POST /collections/<id>/search``."""

    query = fields.String(required=True,
                          validate=[validate.Length(min=1, max=MAX_QUERY_CHARS), _not_blank])
    top_k = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_TOP_K),
                           load_default=10)
    mode = fields.String(validate=validate.OneOf(MODES), load_default="hybrid", metadata={
        "description": "semantic: by meaning; keyword: by words (full-text); hybrid: both, "
                       "fused by reciprocal rank fusion"})


class SearchAllRequest(SearchRequest):
    """``POST /search``: the caller's collections, all of them unless ``collections``."""

    collections = fields.List(_id_field(), validate=validate.Length(
        min=1, max=MAX_SEARCH_COLLECTIONS), load_default=None, metadata={
        "description": "collection ids to search (default: all of yours)"})


def index_fields(strict: bool) -> dict[str, fields.Field]:
    """What ``POST /index`` takes besides the /analyze options."""
    boolean = StrictBoolean if strict else fields.Boolean
    return {
        "collection": _id_field(required=True),
        "media_id": _id_field(allow_none=True, load_default=None),
        "reindex_if_exists": boolean(load_default=False),
    }


class CollectionSchema(Schema):
    collection_id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    media_count = fields.Integer()
    segment_count = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SegmentSchema(Schema):
    id = fields.Integer(attribute="idx")
    start = fields.Float()
    end = fields.Float()
    text = fields.String()


class MediaSummarySchema(Schema):
    """A media item of a collection, as listed."""

    media_id = fields.String(required=True)
    collection_id = fields.String()
    task_id = fields.UUID(allow_none=True)
    duration = fields.Float(allow_none=True)
    language = fields.String(allow_none=True)
    model = fields.String(allow_none=True)
    filename = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    segment_count = fields.Integer()
    created_at = fields.DateTime()


class IndexedMediaSchema(MediaSummarySchema):
    """One media item with its transcript passages."""

    segments = fields.List(fields.Nested(SegmentSchema))


class SearchHitSchema(Schema):
    collection_id = fields.String(required=True)
    media_id = fields.String(required=True)
    task_id = fields.UUID(allow_none=True, metadata={
        "description": "the task that indexed the media: open its transcript and media"})
    start = fields.Float()
    end = fields.Float()
    text = fields.String()
    score = fields.Float(metadata={
        "description": "semantic: cosine similarity; keyword: ts_rank_cd; hybrid: the "
                       "reciprocal rank fusion sum of 1/(60 + rank) over both lists"})
    similarity = fields.Float(allow_none=True, metadata={
        "description": "cosine similarity to the query (null when not vector-ranked)"})
    vector_rank = fields.Integer(allow_none=True, metadata={
        "description": "rank by meaning, from 1 (null: not among the vector candidates)"})
    keyword_rank = fields.Integer(allow_none=True, metadata={
        "description": "rank by words, from 1 (null: no keyword match among candidates)"})


class CollectionListSchema(Schema):
    collections = fields.List(fields.Nested(CollectionSchema), required=True)


class MediaListSchema(Schema):
    media = fields.List(fields.Nested(MediaSummarySchema), required=True)


class SearchResultsSchema(Schema):
    results = fields.List(fields.Nested(SearchHitSchema), required=True,
                          metadata={"description": "best first"})
