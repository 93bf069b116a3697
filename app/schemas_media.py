"""Schemas for media-taking endpoints (/analyze, /index): options, media, callbacks.

JSON bodies are strict (a string is not a boolean); multipart form fields arrive as text
and are parsed leniently by the same schema built with ``strict=False``.
"""

from __future__ import annotations

import functools

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas import HTTP_URL, QUEUE_NAME, StrictBoolean
from app.schemas_speech import SpeechOptionsSchema, speech_fields

LANGUAGE = validate.Regexp(r"^[A-Za-z]{2,3}([-_][A-Za-z]{2,4})?$|^[A-Za-z ]{3,30}$",
                           error="invalid language")
EVENTS = ["task.started", "task.completed", "task.failed", "task.not_finished"]


class MediaSchema(Schema):
    """Where the media comes from: a URL, or base64 content."""

    url = fields.String(validate=validate.Length(min=1, max=2048), metadata=HTTP_URL)
    base64 = fields.String(validate=validate.Length(min=1))
    filename = fields.String(validate=validate.Length(max=255), load_default=None)

    @validates_schema
    def exactly_one_source(self, data, **_kwargs):
        if ("url" in data) == ("base64" in data):
            raise ValidationError("give exactly one of media.url or media.base64", "media")


def analyze_fields(strict: bool) -> dict[str, fields.Field]:
    """Options every transcription request takes."""
    boolean = StrictBoolean if strict else fields.Boolean
    return {
        "model": fields.String(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
                               load_default=None),
        "language": fields.String(validate=LANGUAGE, load_default=None),
        "task": fields.String(validate=validate.OneOf(["transcribe", "translate"]),
                              load_default="transcribe"),
        "word_timestamps": boolean(load_default=False),
        "priority": fields.Integer(strict=strict, validate=validate.Range(min=0, max=9),
                                   load_default=0),
        "device": fields.String(validate=validate.OneOf(["cpu", "gpu"]), load_default=None),
        "queue": fields.String(validate=QUEUE_NAME, load_default=None),
        "webhook": fields.String(validate=validate.Length(min=1, max=2048), load_default=None,
                                 metadata=HTTP_URL),
        "webhook_events": fields.List(fields.String(validate=validate.OneOf(EVENTS)),
                                      load_default=None),
    } | speech_fields(strict, boolean)


def analyze_schema(strict: bool, with_media: bool, extra: dict | None = None) -> Schema:
    """The /analyze (or /index, with ``extra`` fields) request schema; the /analyze one
    is built once per variant (building a schema class costs more than loading a body)."""
    if extra is None:
        return _analyze_schema(strict, with_media)
    return _build_schema(strict, with_media, extra)


@functools.cache
def _analyze_schema(strict: bool, with_media: bool) -> Schema:
    return _build_schema(strict, with_media, None)


def _build_schema(strict: bool, with_media: bool, extra: dict | None) -> Schema:
    declared = analyze_fields(strict) | (extra or {})
    if with_media:
        declared["media"] = fields.Nested(MediaSchema, required=True)
    name = "AnalyzeRequest" if not extra else "IndexRequest"
    return SpeechOptionsSchema.from_dict(declared, name=name)()


def upload_schema(schema_for) -> Schema:
    """The multipart form (for the API document): a ``file`` plus the form's options."""
    form = schema_for(False, False)
    declared = dict(form.declared_fields)
    declared["file"] = fields.Raw(required=True,
                                  metadata={"type": "string", "format": "binary"})
    return Schema.from_dict(declared, name=f"{type(form).__name__}Upload")()
