"""``HARK_LOG=debug`` (or ``info``): requests and responses on the ``hark_client`` logger,
with API keys and webhook secrets redacted."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

import httpx

log = logging.getLogger("hark_client")
LOG_ENV = "HARK_LOG"
REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "cookie", "set-cookie"})
SECRET_FIELDS = frozenset({"api_key", "key", "secret", "token", "password"})
_WHSEC = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")
MAX_BODY = 4000


def setup_logging() -> None:
    """Attach a stderr handler once if ``$HARK_LOG`` asks for ``debug`` or ``info``."""
    level = {"debug": logging.DEBUG, "info": logging.INFO}.get(
        os.environ.get(LOG_ENV, "").strip().lower())
    if level is None:
        return
    log.setLevel(level)
    if not any(getattr(h, "_hark", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(
            "[%(asctime)s %(name)s %(levelname)s] %(message)s"))
        handler._hark = True  # type: ignore[attr-defined]
        log.addHandler(handler)


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with webhook secrets and the given values (the API key) masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _WHSEC.sub("whsec_" + REDACTED, text)


def redact(value: Any) -> Any:
    """A JSON value with secret-named fields masked."""
    if isinstance(value, dict):
        return {k: REDACTED if k.lower() in SECRET_FIELDS and isinstance(v, str) else redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def headers_for_log(headers: httpx.Headers) -> dict[str, str]:
    return {k: REDACTED if k.lower() in SECRET_HEADERS else v for k, v in headers.items()}


def _body(content_type: str, content: bytes, secrets: tuple[str, ...]) -> str:
    if not content:
        return ""
    if "json" in content_type:
        try:
            text = json.dumps(redact(json.loads(content)), ensure_ascii=False)
        except ValueError:
            text = content.decode("utf-8", "replace")
    elif content_type.startswith("text/"):
        text = content.decode("utf-8", "replace")
    else:
        return f"<{len(content)} bytes of {content_type or 'data'}>"
    text = redact_text(text, secrets)
    return text if len(text) <= MAX_BODY else text[:MAX_BODY] + "…"


def log_request(request: httpx.Request, secrets: tuple[str, ...]) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    content_type = request.headers.get("content-type", "")
    try:
        content = request.content if "json" in content_type else b""
    except httpx.RequestNotRead:
        content = b""
    body = _body(content_type, content, secrets) if content else (
        "<multipart upload>" if "multipart" in content_type else "")
    log.debug("request: %s %s headers=%s body=%s", request.method,
              redact_text(str(request.url), secrets), headers_for_log(request.headers), body)


def log_response(response: httpx.Response, secrets: tuple[str, ...]) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    body = _body(response.headers.get("content-type", ""), response.content, secrets)
    log.debug("response: %s %s -> %d headers=%s body=%s", response.request.method,
              redact_text(str(response.request.url), secrets), response.status_code,
              headers_for_log(response.headers), body)
