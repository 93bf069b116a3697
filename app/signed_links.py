"""Short-lived signed URLs for what browsers fetch without headers.

``<audio src>`` and ``EventSource`` cannot send ``x-api-key``, so ``POST
/tasks/<id>/links`` hands out URLs carrying ``?token=``: the owner, the task and an
expiry, signed with HMAC-SHA256 under ``URL_SIGNING_SECRET``. A token opens only the
routes marked :func:`signed_ok`, only for its task, only until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable

from flask import current_app

from app.errors import APIError
from core.keys import Principal

TOKEN_PARAM = "token"


def signed_ok(view: Callable) -> Callable:
    """Mark a view (with a ``task_id`` path parameter) as reachable by a signed URL."""
    view._signed_ok = True  # type: ignore[attr-defined]
    return view


def _secret() -> bytes:
    secret = current_app.config["HARK"].url_signing_secret
    if not secret:
        raise APIError(503, "signing_disabled",
                       "signed URLs are off: set URL_SIGNING_SECRET on the API")
    return secret.encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(owner: str, task_id: uuid.UUID, ttl: float) -> tuple[str, int]:
    """(token, expiry as Unix seconds) for ``owner``'s ``task_id``."""
    expires = int(time.time() + ttl)
    body = _b64(json.dumps({"o": owner, "t": str(task_id), "e": expires},
                           separators=(",", ":")).encode())
    mac = hmac.new(_secret(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}", expires


def principal_from_token(token: str, task_id: uuid.UUID | None) -> Principal:
    """The principal a valid token speaks for; 401 if forged, expired or for another task."""
    refused = APIError(401, "unauthorized", "invalid or expired signed URL")
    body, _, mac = token.partition(".")
    try:
        expected = hmac.new(_secret(), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise refused
        claims = json.loads(_unb64(body))
        owner, scoped, expires = str(claims["o"]), str(claims["t"]), int(claims["e"])
    except (ValueError, KeyError, TypeError):
        raise refused from None
    if expires < time.time() or task_id is None or scoped != str(task_id):
        raise refused
    return Principal(key_id=f"link:{scoped}", owner=owner, name="signed URL", is_admin=False)
