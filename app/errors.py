"""One JSON error shape for every failure: ``{"error": code, "message": text, "details"?}``.

Clients never see a stack trace: unexpected errors are logged and answered with a
generic 500; an unreachable database or broker is a 503 the client may retry.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from kombu.exceptions import OperationalError as BrokerOperationalError
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from core.dispatch import BrokerUnavailable, TooManyActiveTasks

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error with an HTTP status, a stable machine-readable code and a message."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def not_found(what: str = "resource") -> APIError:
    return APIError(404, "not_found", f"{what} not found")


def error_response(status: int, code: str, message: str, details: Any = None, headers=None):
    body: dict[str, Any] = {"error": code, "message": message}
    if details:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def describe_db_error(exc: Exception) -> str:
    """A database error for the logs: its kinds and SQLSTATE, never the statement's
    values or the server's DETAIL line (they may quote secrets)."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None),
                                                          "sqlstate", None)
    kinds = type(exc).__name__ + (f"/{type(orig).__name__}" if orig is not None else "")
    return kinds + (f" (SQLSTATE {sqlstate})" if sqlstate else "")


def _snake(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_")


def register_errorhandlers(app: Flask) -> None:
    @app.errorhandler(APIError)
    def handle_api_error(exc: APIError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(ValidationError)
    def handle_validation(exc: ValidationError):
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        fields = ", ".join(sorted(str(k) for k in messages)) or "request"
        return error_response(400, "validation_error", f"invalid fields: {fields}", messages)

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException):
        headers = {"Allow": exc.response.headers["Allow"]} if exc.code == 405 and exc.response \
            else None
        return error_response(exc.code or 500, _snake(exc.name), exc.description or exc.name,
                              headers=headers)

    @app.errorhandler(BrokerUnavailable)
    @app.errorhandler(BrokerOperationalError)
    def handle_broker(exc: Exception):
        log.warning("broker unavailable: %s", exc)
        return error_response(503, "broker_unavailable",
                              "the task queue is unavailable; retry shortly",
                              headers={"Retry-After": "1"})

    @app.errorhandler(TooManyActiveTasks)
    def handle_active_cap(exc: TooManyActiveTasks):
        return error_response(429, "too_many_active_tasks",
                              f"this key already has {exc.limit} unfinished tasks; wait for "
                              "some to finish", {"limit": exc.limit})

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def handle_database(exc: Exception):
        log.warning("database unavailable: %s", describe_db_error(exc))
        return error_response(503, "database_unavailable",
                              "the database is unavailable; retry shortly",
                              headers={"Retry-After": "1"})

    @app.errorhandler(DBAPIError)
    def handle_dbapi(exc: DBAPIError):
        if exc.connection_invalidated:
            return handle_database(exc)
        # Not the message: PostgreSQL's DETAIL quotes the failing row (secrets included).
        log.error("database error: %s", describe_db_error(exc))
        return error_response(500, "internal_error", "internal server error")

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")

