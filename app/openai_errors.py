"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, for ``/v1``.

The one documented exception to the platform's own shape. The platform's error handlers
answer as everywhere; the /v1 blueprint then reshapes their bodies (:func:`reshape`),
so statuses and headers (``Retry-After``, ``Allow``) stay those of the platform.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

# Platform codes that OpenAI spells otherwise.
CODES = {"unauthorized": "invalid_api_key", "unknown_model": "model_not_found"}


def error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error(status: int, message: str, code: str | None, param: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """An error answered in OpenAI's shape; ``extra`` (e.g. ``task_id``) joins the object."""
    response = jsonify({"error": {"message": message, "type": error_type(status),
                                  "param": param, "code": code, **extra}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _flatten(details: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(field, problem) pairs of a marshmallow-style ``details`` object."""
    if isinstance(details, dict):
        return [pair for key, value in details.items()
                for pair in _flatten(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(details, list):
        return [pair for item in details for pair in _flatten(item, prefix)]
    return [(prefix, str(details))]


def reshape(response: Response) -> Response:
    """A platform-shaped error body (``{"error": code, "message", "details"?}``) in
    OpenAI's shape; anything else is left as it is."""
    if response.status_code < 400 or not response.is_json:
        return response
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return response
    problems = [(name, text) for name, text in _flatten(body.get("details"))
                if name and not name.startswith("_")]
    message = str(body.get("message") or body["error"])
    if problems and body["error"] == "validation_error":  # name each field's problem
        message = "; ".join(f"{name}: {text}" for name, text in problems)
    code = CODES.get(body["error"], body["error"])
    response.set_data(json.dumps({"error": {
        "message": message, "type": error_type(response.status_code),
        "param": problems[0][0] if problems else None, "code": code}}))
    return response


def register(bp: Blueprint) -> None:
    """Reshape the errors of ``bp``'s routes, and routing errors (404, 405) under its
    prefix, which belong to no blueprint."""
    bp.after_request(reshape)
    prefix = (bp.url_prefix or "").rstrip("/") + "/"

    @bp.after_app_request
    def reshape_routing_errors(response: Response) -> Response:
        if request.url_rule is None and request.path.startswith(prefix):
            return reshape(response)
        return response
