"""``GET /health``: is the API up, and can it reach the database and the broker?"""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from app.auth import public
from app.extensions import celery, db
from app.openapi import doc
from app.schemas import HealthSchema

bp = Blueprint("health", __name__)


def _check_database() -> dict:
    try:
        with db.session() as session:
            session.execute(text("SELECT 1"))
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": exc.__class__.__name__}


def _check_broker() -> dict:
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": exc.__class__.__name__}


@bp.get("/health")
@public
@doc("Database and broker reachability", tag="Operations",
     responses={200: HealthSchema, 503: HealthSchema})
def health():
    database, broker = _check_database(), _check_broker()
    ok = database["ok"] and broker["ok"]
    body = {"status": "ok" if ok else "degraded", "database": database, "broker": broker}
    if ok:
        return jsonify(body), 200
    return jsonify(body), 503, {"Retry-After": "5"}
