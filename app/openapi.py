"""The OpenAPI 3 document, generated from the routes and their marshmallow schemas.

Routes describe themselves with :func:`doc` (summary, tag, query/body/response schemas);
:func:`build_spec` walks the app's URL map, so the document cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema, fields

from app.auth import admin_required
from core.models_collections import ID_PATTERN

VERSION = "0.1.0"
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
# Path parameters the views check beyond their converter (400 when they do not match).
PATH_PATTERNS = {"collection_id": ID_PATTERN, "media_id": ID_PATTERN}
_ADMIN_WRAPPER = admin_required(lambda: None).__code__


class ErrorSchema(Schema):
    """Every error response."""

    error = fields.String(required=True, metadata={"description": "machine-readable code"})
    message = fields.String(required=True)
    details = fields.Raw(metadata={"description": "per-field problems, when any"})


def doc(
    summary: str,
    *,
    tag: str,
    query: Schema | type[Schema] | None = None,
    body: Schema | type[Schema] | None = None,
    multipart: dict[str, Any] | None = None,
    responses: dict[int, Any] | None = None,
    description: str | None = None,
    errors: type[Schema] | None = None,
    body_required: bool = True,
) -> Callable:
    """Attach OpenAPI metadata to a view. ``responses`` maps status to a schema (JSON),
    a media type string (e.g. ``"text/plain"``), a ``{media type: schema or None}`` dict
    (None: a string), or None (no body). ``errors``: the error body's schema when it is
    not the platform's (the /v1 routes answer in OpenAI's shape). ``body_required=False``:
    the request body may be left out."""

    def decorate(view: Callable) -> Callable:
        view._openapi = {  # type: ignore[attr-defined]
            "summary": summary, "tag": tag, "query": query, "body": body,
            "multipart": multipart, "responses": responses or {200: None},
            "description": description or (view.__doc__ or "").strip() or None,
            "errors": errors, "body_required": body_required,
        }
        return view

    return decorate


def admin_only(view: Callable) -> bool:
    """Whether ``view`` refuses ordinary keys (403): it is wrapped by ``@admin_required``,
    or calls it itself (``/metrics``, admin-only unless ``METRICS_PUBLIC=1``)."""
    code = getattr(view, "__code__", None)
    return code is not None and (code is _ADMIN_WRAPPER or "admin_required" in code.co_names)


def authenticates_itself(view: Callable) -> bool:
    """A ``@public`` view that still asks for a key (401) in some configurations."""
    code = getattr(view, "__code__", None)
    return code is not None and "authenticate_now" in code.co_names


def honours_idempotency_key(view: Callable) -> bool:
    """A submission that answers a repeat with its first task (``app.idempotency``)."""
    code = getattr(view, "__code__", None)
    return code is not None and "idempotent" in code.co_names


IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Makes a retry safe: the same key, owner and request (fields and "
                   "uploaded file) within 24 h answer with the first request's task, "
                   "making no second task and storing no second upload.",
}


def _path_and_params(rule: str) -> tuple[str, list[dict]]:
    params = []
    for converter, name in _CONVERTER.findall(rule):
        schema = {"type": "string"}
        if converter == "uuid":
            schema["format"] = "uuid"
        elif converter == "int":
            schema = {"type": "integer"}
        elif name in PATH_PATTERNS:
            schema["pattern"] = PATH_PATTERNS[name]
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
    return _CONVERTER.sub(r"{\2}", rule), params


def _response(status: int, spec_value) -> dict:
    descriptions = {200: "OK", 201: "Created", 202: "Accepted (deferred)", 204: "No content"}
    entry: dict[str, Any] = {"description": descriptions.get(status, str(status))}
    if isinstance(spec_value, str):
        entry["content"] = {spec_value: {"schema": {"type": "string"}}}
    elif isinstance(spec_value, dict):
        entry["content"] = {media_type: {"schema": schema or {"type": "string"}}
                            for media_type, schema in spec_value.items()}
    elif spec_value is not None:
        entry["content"] = {"application/json": {"schema": spec_value}}
    return entry


def _operation(meta: dict, path_params: list[dict], view: Callable) -> dict:
    public = getattr(view, "_public", False)
    op: dict[str, Any] = {"summary": meta["summary"], "tags": [meta["tag"]],
                          "parameters": list(path_params)}
    if meta["description"]:
        op["description"] = meta["description"]
    if meta["query"] is not None:
        op["parameters"].append({"in": "query", "schema": meta["query"]})
    content = {}
    if meta["body"] is not None:
        content["application/json"] = {"schema": meta["body"]}
    if meta["multipart"] is not None:
        content["multipart/form-data"] = {"schema": meta["multipart"]}
    if content:
        op["requestBody"] = {"required": meta.get("body_required", True), "content": content}
    op["responses"] = {str(code): _response(code, value)
                       for code, value in meta["responses"].items()}
    error = {"description": "Error", "content": {"application/json": {
        "schema": meta["errors"] or {"$ref": "#/components/schemas/Error"}}}}
    if honours_idempotency_key(view):
        op["parameters"].append(IDEMPOTENCY_HEADER)
        op["responses"].setdefault("409", {**error, "description": (
            "`idempotency_key_reused`: the Idempotency-Key was used in the last 24 h for "
            "another request; `idempotency_key_in_use`: the first request with it is "
            "still in progress after 60 s")})
    for code in ("400", "404", "409", "413", "415", "503"):
        op["responses"].setdefault(code, error)
    if public:
        op["security"] = []
    if not public or authenticates_itself(view):
        op["responses"].setdefault("401", error)
    if admin_only(view):
        op["responses"].setdefault("403", {**error, "description": "Needs an admin key"})
    if not public or authenticates_itself(view):
        op["responses"].setdefault("429", {**error, "description": (
            "Rate limited: wait `Retry-After` seconds (RATE_LIMIT_PER_MINUTE per key, "
            "AUTH_FAILURES_PER_MINUTE invalid keys per client address)")})
    return op


def build_spec(app: Flask) -> dict:
    spec = APISpec(
        title="Hark", version=VERSION, openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Self-hosted asynchronous media analysis: transcription, "
                             "indexing and search."},
    )
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header",
                                               "name": "x-api-key"})
    spec.components.security_scheme("Bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    spec.options["security"] = [{"ApiKey": []}, {"Bearer": []}]
    paths: dict[str, dict] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "_openapi", None)
        if meta is None:
            continue
        path, params = _path_and_params(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = _operation(meta, params, view)
            paths.setdefault(path, {})[method.lower()] = operation
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    return spec.to_dict()
