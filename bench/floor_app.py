"""The floors the submit path is compared with, served by the same gunicorn config:
``POST /trivial`` (a JSON answer, nothing else), ``POST /insert`` (one INSERT in a
transaction, as most Flask apps write it) and ``POST /insert-autocommit`` (one INSERT that
commits itself: the fewest round trips a durable write can take)."""

from __future__ import annotations

import os
import uuid

from flask import Flask, jsonify, request
from sqlalchemy import text

from core.db import make_engine


def create_floor_app() -> Flask:
    app = Flask(__name__)
    engine = make_engine(os.environ["DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_floor "
                          "(id uuid PRIMARY KEY, body jsonb NOT NULL)"))

    @app.post("/trivial")
    def trivial():
        return jsonify({"ok": True}), 202

    @app.post("/insert")
    def insert():
        row_id = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_floor (id, body) VALUES (:id, :body)"),
                         {"id": row_id, "body": request.get_data(as_text=True) or "{}"})
        return jsonify({"task_id": str(row_id)}), 202

    @app.post("/insert-autocommit")
    def insert_autocommit():
        row_id = uuid.uuid4()
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("INSERT INTO bench_floor (id, body) VALUES (:id, :body)"),
                         {"id": row_id, "body": request.get_data(as_text=True) or "{}"})
        return jsonify({"task_id": str(row_id)}), 202

    return app
