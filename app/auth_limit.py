"""Failed authentications are limited per client address, before any key lookup.

An unknown or revoked key costs a token from its client's bucket (``ratelimit``'s token
bucket, in the Redis broker, shared by every API process): ``AUTH_FAILURES_PER_MINUTE``
a minute, as many at once. A key that is not in the key cache is looked up only while
its client's bucket holds a token; an empty bucket is a 429 with ``Retry-After`` and no
database query, so a valid key is refused only from an address that failed that often.
With a broker other than Redis each API process keeps its own buckets.
``AUTH_FAILURES_PER_MINUTE=0`` turns the limit off.
"""

from __future__ import annotations

import threading
import time

from flask import Flask, current_app, request

from app.errors import APIError
from app.ratelimit import Decision, Limit, RedisBucket, retry_after_header
from core.config import Settings

BUCKET_PREFIX = "authfail:"


class LocalBucket:
    """Token buckets in this process (brokers other than Redis); same ``take`` as
    :class:`RedisBucket`."""

    def __init__(self, limit: Limit, max_size: int = 100_000) -> None:
        self.limit = limit
        self._max_size = max_size
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, stamp)
        self._lock = threading.Lock()

    def take(self, key_id: str, now: float | None = None, cost: int = 1) -> Decision:
        now = time.monotonic() if now is None else now
        rate, burst = self.limit.per_second, self.limit.burst
        with self._lock:
            tokens, last = self._buckets.get(key_id, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - last) * rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= cost
            if len(self._buckets) >= self._max_size:
                self._buckets.clear()
            self._buckets[key_id] = (tokens, now)
        wait = 0.0 if allowed else (1 - tokens) / rate
        return Decision(allowed, int(tokens), wait)

    def close(self) -> None:
        self._buckets.clear()


def make_auth_limiter(settings: Settings) -> RedisBucket | LocalBucket | None:
    """Buckets for failed authentications; None when ``AUTH_FAILURES_PER_MINUTE=0``."""
    per_minute = settings.auth_failures_per_minute
    if per_minute <= 0:
        return None
    limit = Limit(per_minute, per_minute)
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return RedisBucket(settings.broker_url, limit, settings.broker_key_prefix)
    return LocalBucket(limit)


def _client() -> str:
    return BUCKET_PREFIX + (request.remote_addr or "unknown")


def _refuse(decision: Decision) -> APIError:
    wait = retry_after_header(decision.retry_after)
    return APIError(429, "too_many_failed_authentications",
                    f"too many invalid API keys from this address; retry in {wait} s",
                    {"retry_after": int(wait)}, headers={"Retry-After": wait})


def before_lookup() -> None:
    """Refuse (429) a client whose failures used up its allowance; nothing is taken."""
    limiter = current_app.extensions.get("hark_auth_limit")
    if limiter is None:
        return
    decision = limiter.take(_client(), cost=0)
    if not decision.allowed:
        raise _refuse(decision)


def failed() -> None:
    """Count a failed authentication; a 429 if the client had no allowance left."""
    limiter = current_app.extensions.get("hark_auth_limit")
    if limiter is None:
        return
    decision = limiter.take(_client())
    if not decision.allowed:
        raise _refuse(decision)


def init_auth_limit(app: Flask) -> None:
    app.extensions["hark_auth_limit"] = make_auth_limiter(app.config["HARK"])
