"""Schemas of the OpenAI-compatible API (``/v1``): its multipart forms and its answers.

The forms reuse the /analyze fields (``language``, ``prompt``), so both validate alike;
the answers follow OpenAI's ``Transcription``, ``TranscriptionVerbose``,
``TranscriptionDiarized``, ``Model`` and error objects.
"""

from __future__ import annotations

import functools

from marshmallow import Schema, fields, validate

from app.schemas_media import analyze_fields

FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
TRANSLATION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")
ALIAS = "whisper-1"
MODEL_NAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", error="invalid model name")


@functools.cache
def form_schema(translate: bool) -> Schema:
    """The multipart form (less ``file``) of /v1/audio/transcriptions or /translations."""
    analyze = analyze_fields(strict=False)
    declared: dict[str, fields.Field] = {
        "model": fields.String(required=True, validate=MODEL_NAME, metadata={
            "description": f"`{ALIAS}` (the default model) or a name from GET /v1/models"}),
        "prompt": analyze["prompt"],
        "response_format": fields.String(
            validate=validate.OneOf(TRANSLATION_FORMATS if translate else FORMATS),
            load_default="json"),
        "temperature": fields.Float(validate=validate.Range(min=0, max=1), load_default=0.0,
                                    metadata={"description": "0 only: Whisper's fallback "
                                              "schedule (0, 0.2, ... 1.0) decides"}),
    }
    if not translate:
        declared["language"] = analyze["language"]
        declared["timestamp_granularities"] = fields.List(
            fields.String(validate=validate.OneOf(GRANULARITIES)),
            data_key="timestamp_granularities[]", load_default=None)
    name = "OpenAITranslationForm" if translate else "OpenAITranscriptionForm"
    return Schema.from_dict(declared, name=name)()


def upload_form(translate: bool) -> Schema:
    """The form for the API document: ``file`` plus :func:`form_schema`'s fields."""
    declared = dict(form_schema(translate).declared_fields)
    declared["file"] = fields.Raw(required=True, metadata={"type": "string",
                                                           "format": "binary"})
    name = "OpenAITranslationUpload" if translate else "OpenAITranscriptionUpload"
    return Schema.from_dict(declared, name=name)()


class OpenAIErrorBodySchema(Schema):
    message = fields.String(required=True)
    type = fields.String(required=True)
    param = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, allow_none=True)
    task_id = fields.String(metadata={"description": "the task, when one was created"})


class OpenAIErrorSchema(Schema):
    """OpenAI's error object: every error of the /v1 routes."""

    error = fields.Nested(OpenAIErrorBodySchema, required=True)


class OpenAIUsageSchema(Schema):
    type = fields.String(required=True, validate=validate.Equal("duration"))
    seconds = fields.Integer(required=True)


class OpenAITranscriptionSchema(Schema):
    """``response_format=json``."""

    text = fields.String(required=True)
    usage = fields.Nested(OpenAIUsageSchema)


class OpenAIWordSchema(Schema):
    word = fields.String(required=True)
    start = fields.Float(required=True)
    end = fields.Float(required=True)


class OpenAISegmentSchema(Schema):
    id = fields.Integer(required=True)
    seek = fields.Integer(required=True)
    start = fields.Float(required=True)
    end = fields.Float(required=True)
    text = fields.String(required=True)
    tokens = fields.List(fields.Integer(), required=True)
    temperature = fields.Float(required=True)
    avg_logprob = fields.Float(required=True)
    compression_ratio = fields.Float(required=True)
    no_speech_prob = fields.Float(required=True)


class OpenAITranscriptionVerboseSchema(Schema):
    """``response_format=verbose_json``: ``segments`` and/or ``words`` as
    ``timestamp_granularities[]`` asks (segments by default)."""

    task = fields.String(required=True, validate=validate.OneOf(["transcribe", "translate"]))
    language = fields.String(required=True)
    duration = fields.Float(required=True)
    text = fields.String(required=True)
    segments = fields.List(fields.Nested(OpenAISegmentSchema))
    words = fields.List(fields.Nested(OpenAIWordSchema))
    usage = fields.Nested(OpenAIUsageSchema)


class OpenAIDiarizedSegmentSchema(Schema):
    type = fields.String(required=True, validate=validate.Equal("transcript.text.segment"))
    id = fields.String(required=True)
    start = fields.Float(required=True)
    end = fields.Float(required=True)
    text = fields.String(required=True)
    speaker = fields.String(required=True)


class OpenAITranscriptionDiarizedSchema(Schema):
    """``response_format=diarized_json``."""

    task = fields.String(required=True, validate=validate.Equal("transcribe"))
    duration = fields.Float(required=True)
    text = fields.String(required=True)
    segments = fields.List(fields.Nested(OpenAIDiarizedSegmentSchema), required=True)
    usage = fields.Nested(OpenAIUsageSchema)


class OpenAIModelSchema(Schema):
    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.Equal("model"))
    created = fields.Integer(required=True)
    owned_by = fields.String(required=True)


class OpenAIModelListSchema(Schema):
    object = fields.String(required=True, validate=validate.Equal("list"))
    data = fields.List(fields.Nested(OpenAIModelSchema), required=True)
