"""Reading request bodies: JSON objects only, validated by a schema."""

from __future__ import annotations

import json
import re
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
    except RecursionError:
        raise APIError(400, "invalid_json", "malformed JSON body: nested too deeply") from None
    if not isinstance(body, dict):
        raise APIError(400, "invalid_json", "the JSON body must be an object")
    if b"\\u" in raw:  # NULs and lone surrogates can only come from \\u escapes
        problem = first_unstorable(body)
        if problem:
            raise APIError(400, "invalid_json", f"malformed JSON body: {problem}")
    return body


# PostgreSQL refuses NUL in text and JSON; a lone surrogate (what JSON's "\\ud800" gives)
# cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "strings must not contain NUL (\\u0000) characters"
    return "strings must not contain unpaired surrogates"


def first_unstorable(value: Any) -> str | None:
    """The first problem :func:`unstorable` finds in a JSON value's strings and keys."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = unstorable(item)
            if problem:
                return problem
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def load_json(schema: Schema) -> dict[str, Any]:
    """Parse and validate the JSON body; unknown fields are refused."""
    return schema.load(json_object())


def load_args(schema: Schema) -> dict[str, Any]:
    """Validate the query string; unknown parameters are refused."""
    return schema.load(request.args.to_dict())
