"""``GET /me`` (who the key belongs to, and the limits that apply) and ``GET /models``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.auth import current_principal
from app.extensions import db
from app.openapi import doc
from app.schemas import MeSchema, ModelsSchema
from core.worker_models import accepted_models

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
@doc("Transcription models online workers can run (else the configured list)", tag="Analyze",
     responses={200: ModelsSchema})
def models():
    settings = current_app.config["HARK"]
    with db.session() as session:
        names = accepted_models(session, settings)
    return jsonify({"models": names, "default": settings.default_model})
