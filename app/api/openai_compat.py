"""The OpenAI-compatible API: ``POST /v1/audio/transcriptions``, ``POST
/v1/audio/translations``, ``GET /v1/models`` (and ``/v1/models/<model>``).

Each call is an ``/analyze`` task like any other (listed, counted, retried, cancelled,
webhooks fire), submitted through the same path; the call waits for it, notified, up to
``OPENAI_SYNC_TIMEOUT`` and answers in OpenAI's shapes, errors included
(:mod:`app.openai_errors`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from app import openai_errors
from app.api.analyze import analyze_endpoint, check_model, split_request
from app.errors import APIError
from app.extensions import db
from app.media_input import form_fields, multipart_upload, store_upload
from app.openai_errors import openai_error
from app.openai_format import render
from app.openapi import doc
from app.schemas_media import analyze_fields, analyze_schema
from app.schemas_openai import (
    ALIAS,
    OpenAIErrorSchema,
    OpenAIModelListSchema,
    OpenAIModelSchema,
    OpenAITranscriptionDiarizedSchema,
    OpenAITranscriptionSchema,
    OpenAITranscriptionVerboseSchema,
    form_schema,
    upload_form,
)
from core.worker_models import accepted_models

bp = Blueprint("openai", __name__, url_prefix="/v1")
openai_errors.register(bp)
# Task errors that mean the input was bad (a 400), not the platform (a 500).
BAD_INPUT = {"MediaDecodeError", "MediaTooLong", "UnknownModelError", "ValueError"}
ANSWERS = {
    200: {"application/json": {"anyOf": [OpenAITranscriptionSchema,
                                         OpenAITranscriptionVerboseSchema,
                                         OpenAITranscriptionDiarizedSchema]},
          "text/plain": None},
    500: OpenAIErrorSchema,
    504: OpenAIErrorSchema,
}
# With diarization on this branch, ``diarized_json`` asks for it.
DIARIZE = "diarize" in analyze_fields(strict=False)


def _bad(message: str, param: str, code: str = "invalid_value") -> APIError:
    return APIError(400, code, message, {param: [message]})


def _read_form(translate: bool) -> dict[str, Any]:
    """The validated form (the upload not stored yet)."""
    form = form_schema(translate).load(form_fields(("timestamp_granularities[]",)))
    if form["temperature"] != 0:
        raise _bad("only temperature 0 is supported (Whisper's fallback schedule)",
                   "temperature", "unsupported_value")
    granularities = form.pop("timestamp_granularities", None)
    if granularities and form["response_format"] != "verbose_json":
        raise _bad("timestamp_granularities[] needs response_format=verbose_json",
                   "timestamp_granularities[]")
    form["granularities"] = set(granularities or ["segment"])
    if form["response_format"] == "diarized_json" and not DIARIZE:
        raise _bad("diarized_json needs speaker diarization, which this server does not "
                   "offer yet", "response_format", "unsupported_value")
    form["model"] = check_model(None if form["model"] == ALIAS else form["model"])
    return form


def _options(form: dict[str, Any], translate: bool) -> dict[str, Any]:
    """The /analyze options (its defaults included) the form asks for."""
    fields = {"model": form["model"], "task": "translate" if translate else "transcribe",
              "word_timestamps": "word" in form["granularities"],
              "language": form.get("language"), "prompt": form.get("prompt")}
    if DIARIZE:
        fields["diarize"] = form["response_format"] == "diarized_json"
    return analyze_schema(False, False).load({k: v for k, v in fields.items()
                                              if v is not None})


def _answer(translate: bool) -> Response:
    if request.mimetype != "multipart/form-data":
        raise APIError(415, "unsupported_media_type",
                       "send multipart/form-data with a 'file' field")
    upload = multipart_upload()
    form = _read_form(translate)
    options, routing, _callback = split_request(_options(form, translate))
    media, pending = store_upload(upload)
    timeout = current_app.config["HARK"].openai_sync_timeout
    outcome = analyze_endpoint.run({"media": media, "options": options}, wait=timeout,
                                   upload=pending, **routing)
    task_id = str(outcome.task_id)
    no_retry = {"x-should-retry": "false", "Location": f"/tasks/{task_id}"}
    task = outcome.finished
    if task is None:
        return openai_error(504, f"the task did not finish within {timeout:g} s; it goes on: "
                            f"GET /tasks/{task_id} follows it", "task_not_finished",
                            headers=no_retry, task_id=task_id)
    if task.status != "completed":
        error = task.error or {}
        status = 400 if error.get("type") in BAD_INPUT else 500
        return openai_error(status, str(error.get("message") or "the task failed"),
                            "task_failed", headers=no_retry, task_id=task_id)
    body, content_type = render(task.result or {}, form["response_format"],
                                options["task"], form["granularities"])
    response = jsonify(body) if isinstance(body, dict) else Response(body)
    response.content_type = content_type
    response.headers["x-hark-task-id"] = task_id
    return response


@bp.post("/audio/transcriptions")
@doc("Transcribe audio (OpenAI-compatible)", tag="OpenAI", multipart=upload_form(False),
     responses=ANSWERS, errors=OpenAIErrorSchema)
def transcriptions():
    """OpenAI's ``audio.transcriptions.create``; waits for the task (`OPENAI_SYNC_TIMEOUT`)."""
    return _answer(translate=False)


@bp.post("/audio/translations")
@doc("Translate audio into English (OpenAI-compatible)", tag="OpenAI",
     multipart=upload_form(True), responses=ANSWERS, errors=OpenAIErrorSchema)
def translations():
    """OpenAI's ``audio.translations.create``; needs a multilingual model."""
    return _answer(translate=True)


def _models() -> list[dict[str, Any]]:
    with db.session() as session:
        names = accepted_models(session, current_app.config["HARK"])
    return [{"id": name, "object": "model", "created": 0, "owned_by": "hark"}
            for name in [ALIAS, *names]]


@bp.get("/models")
@doc("Models (OpenAI-compatible)", tag="OpenAI", responses={200: OpenAIModelListSchema},
     errors=OpenAIErrorSchema)
def list_models():
    """``whisper-1`` (the default model, ``WHISPER_MODEL``) and every model the API
    accepts (what online workers can run, else ``MODELS``)."""
    return jsonify({"object": "list", "data": _models()})


@bp.get("/models/<model>")
@doc("One model (OpenAI-compatible)", tag="OpenAI", responses={200: OpenAIModelSchema},
     errors=OpenAIErrorSchema)
def get_model(model: str):
    for entry in _models():
        if entry["id"] == model:
            return jsonify(entry)
    raise APIError(404, "model_not_found", f"the model {model!r} does not exist",
                   {"model": ["unknown model"]})
