"""``GET /me`` (who the key belongs to, and the limits that apply) and ``GET /models``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.auth import current_principal
from app.openapi import doc
from app.schemas import MeSchema, ModelsSchema

bp = Blueprint("me", __name__)


@bp.get("/me")
@doc("The calling key's owner and the limits that apply", tag="Account",
     responses={200: MeSchema})
def me():
    principal = current_principal()
    settings = current_app.config["HARK"]
    return jsonify({
        "owner": principal.owner, "name": principal.name, "admin": principal.is_admin,
        "limits": {"max_request_mb": settings.max_request_bytes // (1024 * 1024),
                   "max_media_seconds": settings.max_media_seconds,
                   "sync_timeout": settings.sync_timeout},
    })


@bp.get("/models")
@doc("Transcription models this platform can run", tag="Analyze",
     responses={200: ModelsSchema})
def models():
    from workers.asr.registry import DEFAULT_MODEL, available_models

    return jsonify({"models": available_models(), "default": DEFAULT_MODEL})
