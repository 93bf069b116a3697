"""API-key authentication: every route needs ``x-api-key`` unless marked ``@public``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import Flask, current_app, g, request

from app import auth_limit
from app.errors import APIError
from app.extensions import db, principals
from app.signed_links import TOKEN_PARAM, principal_from_token
from core.keys import Principal, find_principal


def public(view: Callable) -> Callable:
    """Mark a view as reachable without an API key."""
    view._public = True  # type: ignore[attr-defined]
    return view


def admin_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_principal().is_admin:
            raise APIError(403, "forbidden", "this operation needs an admin key")
        return view(*args, **kwargs)

    return wrapper


def current_principal() -> Principal:
    return g.principal


def _presented_key() -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def authenticate() -> None:
    if request.endpoint is None:  # no such route: let the 404/405 answer stand
        return
    view = current_app.view_functions.get(request.endpoint)
    if view is None or getattr(view, "_public", False):
        return
    token = request.args.get(TOKEN_PARAM)
    if token and getattr(view, "_signed_ok", False) and not _presented_key():
        g.principal = principal_from_token(token, (request.view_args or {}).get("task_id"))
        return
    authenticate_now()


def authenticate_now() -> None:
    """Require a valid key for this request and remember who sent it."""
    raw = _presented_key()
    if not raw:
        raise APIError(401, "unauthorized", "missing API key: send it in the x-api-key header")
    principal = principals.get(raw)
    if principal is None:
        if principals.refused(raw):  # found invalid a moment ago: no second lookup
            auth_limit.failed()
            raise APIError(401, "unauthorized", "invalid API key")
        auth_limit.before_lookup()  # a client that failed too often: 429, no lookup
        with db.session() as session:
            principal = find_principal(session, raw)
        if principal is None:
            principals.refuse(raw)
            auth_limit.failed()
            raise APIError(401, "unauthorized", "invalid API key")
        principals.put(raw, principal)
    g.principal = principal


def init_auth(app: Flask) -> None:
    auth_limit.init_auth_limit(app)
    app.before_request(authenticate)
