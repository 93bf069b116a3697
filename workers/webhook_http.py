"""Sending one webhook request, and the settings and outcomes that govern it.

Plain functions with no database access: :func:`send` posts a signed body to a URL that
was checked against private addresses (and connects to the very address it checked),
:func:`classify` turns the answer into an :class:`Outcome`, :func:`retry_delay` spaces
the retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from core.netguard import UnsafeURLError, check_url
from core.webhooks import DEFAULT_RETRY_SCHEDULE, WebhookSettings  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

USER_AGENT = "Hark-Webhooks/1"

class Outcome(StrEnum):
    """What an attempt decided for its delivery."""

    SUCCEEDED = "succeeded"
    """2xx: delivered."""
    RETRY = "retry"
    """Timeout, connection error, 429 or 5xx, with retries left: another attempt is due."""
    FAILED = "failed"
    """Another 4xx, a redirect, a refused URL, or retries ran out: no more attempts."""
    DISABLED = "disabled"
    """410 Gone: the subscription is disabled and the delivery stops."""


# --- sending -------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """What one HTTP request gave: a status code, or an error (and if it is worth retrying)."""

    status_code: int | None = None
    error: str | None = None
    retryable: bool = False
    duration_ms: int = 0
    retry_after: float | None = None


@dataclass(frozen=True)
class _Target:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:  # built once per process: loading CA files costs milliseconds
        import certifi

        _ssl_context = ssl.create_default_context(cafile=certifi.where())
    return _ssl_context


async def _pinned(url: str, allow_private: bool) -> _Target:
    """Check ``url`` and, unless private addresses are allowed, pin the address we checked.

    Resolving once and connecting to that address (with the original Host and TLS name)
    closes the gap a DNS answer could change in between (DNS rebinding).
    """
    check_url(url, allow_private=allow_private, resolve=False)
    if allow_private:
        return _Target(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    if not infos:
        raise UnsafeURLError(f"cannot resolve host {host!r}")
    addresses = [info[4][0] for info in infos]
    literal = [f"[{a}]" if ":" in a else a for a in addresses]
    for address in literal:  # every answer must be public, as at subscription time
        check_url(f"{parts.scheme}://{address}/", allow_private=False)
    pinned = urlunsplit((parts.scheme, f"{literal[0]}:{port}", parts.path or "/", parts.query, ""))
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return _Target(pinned, {"Host": parts.netloc}, extensions)


async def _send(url: str, headers: dict[str, str], body: bytes,
                settings: WebhookSettings) -> SendResult:
    target = await _pinned(url, settings.allow_private)
    timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
    # trust_env=False: no proxies or .netrc from the environment; we reach the checked address.
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                                 verify=_tls()) as client:
        request = client.build_request("POST", target.url, content=body,
                                       headers={**headers, **target.headers},
                                       extensions=target.extensions)
        response = await client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():  # raw: no decompression bombs
                read += len(chunk)
                if read >= settings.max_response_bytes:
                    break
        finally:
            await response.aclose()
    retry_after = None
    value = response.headers.get("retry-after", "")
    if value.strip().isdigit():
        retry_after = float(value.strip())
    return SendResult(status_code=response.status_code, retry_after=retry_after)


def send(url: str, headers: dict[str, str], body: bytes, settings: WebhookSettings) -> SendResult:
    """POST ``body`` once, within ``settings.timeout`` in all; never raises, never redirects."""
    started = time.monotonic()

    async def bounded() -> SendResult:
        return await asyncio.wait_for(_send(url, headers, body, settings), settings.timeout)

    try:
        result = asyncio.run(bounded())
    except UnsafeURLError as exc:
        result = SendResult(error=f"refused URL: {exc}")
    except (TimeoutError, httpx.TimeoutException):
        result = SendResult(error=f"timed out after {settings.timeout:g}s", retryable=True)
    except (httpx.HTTPError, OSError) as exc:
        result = SendResult(error=f"connection error: {exc.__class__.__name__}: {exc}"[:500],
                            retryable=True)
    except Exception as exc:  # anything else is a bug or a bad URL; record it, do not crash
        log.exception("webhook request to %s failed", _origin(url))  # paths may hold tokens
        result = SendResult(error=f"request error: {exc.__class__.__name__}: {exc}"[:500])
    duration_ms = int((time.monotonic() - started) * 1000)
    return SendResult(result.status_code, result.error, result.retryable, duration_ms,
                      result.retry_after)


def classify(result: SendResult) -> Outcome:
    """Success, retry, or stop, before counting the retries left."""
    code = result.status_code
    if code is None:
        return Outcome.RETRY if result.retryable else Outcome.FAILED
    if 200 <= code < 300:
        return Outcome.SUCCEEDED
    if code == 410:
        return Outcome.DISABLED
    if code == 429 or code >= 500:
        return Outcome.RETRY
    return Outcome.FAILED


def describe(result: SendResult) -> str | None:
    if result.error:
        return result.error
    code = result.status_code
    if code is None or 200 <= code < 300:
        return None
    if 300 <= code < 400:
        return f"HTTP {code}: redirects are not followed"
    return f"HTTP {code}"


def retry_delay(settings: WebhookSettings, index: int, retry_after: float | None = None,
                rng: random.Random | None = None) -> float | None:
    """Seconds before retry number ``index`` (0-based), jittered; None when none are left."""
    if index >= len(settings.retry_schedule):
        return None
    base = settings.retry_schedule[index]
    jitter = max(0.0, min(settings.retry_jitter, 1.0))
    delay = base * (rng or random).uniform(1 - jitter, 1 + jitter)
    if retry_after is not None and retry_after > delay:  # the receiver asked to wait longer
        delay = min(retry_after, max(settings.retry_schedule))
    return delay


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: safe to log (Slack-style paths are secrets)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{parts.hostname}{port}" if parts.hostname else "<invalid URL>"
