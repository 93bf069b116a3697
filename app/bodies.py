"""Reading request bodies: JSON objects only, validated by a schema."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import Schema

from app.errors import APIError


def json_object() -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    if not request.is_json:
        raise APIError(415, "unsupported_media_type",
                       "send a JSON body with Content-Type: application/json")
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, "invalid_json", f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise APIError(400, "invalid_json", "the JSON body must be an object")
    return body


def load_json(schema: Schema) -> dict[str, Any]:
    """Parse and validate the JSON body; unknown fields are refused."""
    return schema.load(json_object())


def load_args(schema: Schema) -> dict[str, Any]:
    """Validate the query string; unknown parameters are refused."""
    return schema.load(request.args.to_dict())
