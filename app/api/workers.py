"""``GET /workers`` (admin): online workers, their device and queues, the task each is
running, the models each can run and has loaded, from the presence rows workers keep fresh."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.auth import admin_required
from app.extensions import db
from app.openapi import doc
from app.schemas import WorkersSchema
from core.worker_models import online_workers

bp = Blueprint("workers", __name__)


@bp.get("/workers")
@doc("Online workers (admin)", tag="Operations", responses={200: WorkersSchema})
@admin_required
def list_workers():
    settings = current_app.config["HARK"]
    with db.session() as session:
        rows = online_workers(session, settings.heartbeat_interval)
    return jsonify({"workers": [{
        "id": w.id, "node": w.node, "host": w.host, "pid": w.pid, "role": w.role,
        "device": w.device, "queues": w.queues, "models": w.models,
        "available": w.available or [],
        "current_task": str(w.current_task) if w.current_task else None,
        "tasks": (w.stats or {}).get("tasks", {}),
        "started_at": w.started_at.isoformat(), "last_seen": w.last_seen.isoformat(),
    } for w in rows]})
