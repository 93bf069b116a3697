"""``POST /analyze``: transcribe audio or video with Whisper (defer optional)."""

from __future__ import annotations

from flask import Blueprint, current_app

from app.endpoints import DeferOption, Endpoint
from app.errors import APIError
from app.idempotency import idempotent
from app.media_input import read_request
from app.online import accepted_models
from app.openapi import doc
from app.schemas import DeferredSchema, FinishedTaskSchema, SubmitArgs
from app.schemas_media import analyze_schema, upload_schema
from core.idempotency import Keyed
from core.netguard import UnsafeURLError, check_url

bp = Blueprint("analyze", __name__)
analyze_endpoint = Endpoint(
    name="analyze",
    path="/analyze",
    summary="Transcribe or translate speech in an audio or video file",
    defer_option=DeferOption.OPTIONAL,
)
ROUTING = ("priority", "device", "queue")
CALLBACK = ("webhook", "webhook_events")


def split_request(options: dict) -> tuple[dict, dict, dict]:
    """(model options, routing, callback) from a validated request."""
    routing = {k: options.pop(k) for k in ROUTING}
    callback = {k: options.pop(k) for k in CALLBACK if options.get(k) is not None}
    for key in CALLBACK:
        options.pop(key, None)
    return options, routing, callback


def check_model(name: str | None) -> str:
    """``name`` (or the default) if an online worker can run it (see
    :mod:`app.online`); else a 400 naming the models that are."""
    name = name or current_app.config["HARK"].default_model
    models = accepted_models()
    if name not in models:
        raise APIError(400, "unknown_model", f"unknown model {name!r}; available: "
                       + ", ".join(models), {"model": [f"choose one of {models}"]})
    return name


def check_callback(callback: dict) -> None:
    if "webhook" not in callback:
        return
    try:
        check_url(callback["webhook"],
                  allow_private=current_app.config["HARK"].webhook_allow_private)
    except UnsafeURLError as exc:
        raise APIError(400, "invalid_webhook_url", str(exc)) from None


def check_options(options: dict) -> None:
    """Validation that needs more than the schema, done before any upload is stored."""
    options["model"] = check_model(options["model"])
    check_callback({k: options[k] for k in CALLBACK if options.get(k) is not None})


@bp.post("/analyze")
@doc("Transcribe or translate an audio or video file", tag="Analyze", query=SubmitArgs,
     body=analyze_schema(True, True), multipart=upload_schema(analyze_schema),
     responses={200: FinishedTaskSchema, 202: DeferredSchema})
def analyze():
    """An ``Idempotency-Key`` header makes a repeat of this request (within 24 h) name
    the first one's task; the same key with another request is a 409."""
    return idempotent(analyze_endpoint, _analyze)


def _analyze(keyed: Keyed | None):
    options, media, upload = read_request(analyze_schema, check_options)
    options, routing, callback = split_request(options)
    data = {"media": media, "options": options, **callback}
    return analyze_endpoint.submit(data, keyed=keyed, upload=upload, **routing)
