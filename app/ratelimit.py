"""Per-API-key rate limiting: a token bucket per key, shared by every API process in Redis.

A key may send ``burst`` requests at once; its bucket refills at ``per_minute / 60``
tokens a second (``RATE_LIMIT_BURST=0`` means a burst of one minute's allowance). Over
the limit the API answers 429 with ``Retry-After``. The buckets live in the Redis broker
(the embedded one too), one ``EVALSHA`` per request; a limit with a non-Redis broker
(RabbitMQ) is refused at startup. An unreachable Redis never
takes the API down: the limiter fails open, logs a warning and leaves Redis alone for a
few seconds. With ``RATE_LIMIT_PER_MINUTE=0`` (the default) nothing is registered at all.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import redis
from flask import Flask, Response, g
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.errors import APIError
from core.config import Settings

log = logging.getLogger(__name__)

# Redis calls give up after this long; then Redis is skipped (requests allowed) a while.
REDIS_TIMEOUT = 0.2
REDIS_RETRY_AFTER = 5.0

# KEYS[1]: the bucket (hash: t = tokens, ts = last update in ms).
# ARGV: refill rate in tokens per ms, burst, now in ms ("" = the Redis server's clock),
# cost (1; 0 asks whether a token is there without taking it).
# Returns {allowed (0/1), ms until a token is available, whole tokens left}.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4]) or 1
if not now then
  local t = redis.call('TIME')
  now = t[1] * 1000 + math.floor(t[2] / 1000)
end
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1]) or burst
local last = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
return {allowed, wait, math.floor(tokens)}
"""


@dataclass(frozen=True)
class Limit:
    """``per_minute`` requests a minute, at most ``burst`` at once."""

    per_minute: int
    burst: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limit | None:
        """The configured limit, or None when rate limiting is off."""
        if settings.rate_limit_per_minute <= 0:
            return None
        burst = settings.rate_limit_burst
        return cls(settings.rate_limit_per_minute,
                   burst if burst > 0 else settings.rate_limit_per_minute)

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


class Decision(NamedTuple):
    """One request's verdict; ``retry_after`` is in seconds (0 when allowed)."""

    allowed: bool
    remaining: int
    retry_after: float


class RedisBucket:
    """Buckets in Redis, shared by every API process; idle ones expire once full again."""

    def __init__(self, url: str, limit: Limit, prefix: str = "",
                 timeout: float = REDIS_TIMEOUT) -> None:
        self.limit = limit
        self._prefix = f"{prefix}ratelimit:"
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0))
        self._script = self._client.register_script(_TAKE)
        self._args = (repr(limit.per_second / 1000.0), limit.burst)
        self._skip_until = 0.0

    def key(self, key_id: str) -> str:
        return self._prefix + key_id

    def take(self, key_id: str, now: float | None = None, cost: int = 1) -> Decision:
        """Take a token (``cost=0``: only see whether one is there); ``now`` (seconds)
        overrides the Redis server clock (tests)."""
        if self._skip_until and time.monotonic() < self._skip_until:
            return Decision(True, self.limit.burst, 0.0)
        stamp = "" if now is None else int(now * 1000)
        try:
            allowed, wait_ms, remaining = self._script(
                keys=[self.key(key_id)], args=[*self._args, stamp, cost])
        except redis.RedisError as exc:
            self._skip_until = time.monotonic() + REDIS_RETRY_AFTER
            log.warning("rate limiter: Redis unavailable (%s); allowing requests for %.0f s",
                        exc, REDIS_RETRY_AFTER)
            return Decision(True, self.limit.burst, 0.0)
        self._skip_until = 0.0
        return Decision(bool(allowed), int(remaining), wait_ms / 1000.0)

    def close(self) -> None:
        self._client.close()


def make_limiter(settings: Settings) -> RedisBucket | None:
    """Buckets in the Redis broker; None when off. Raises ValueError on another broker."""
    limit = Limit.from_settings(settings)
    if limit is None:
        return None
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        raise ValueError("RATE_LIMIT_PER_MINUTE needs a Redis broker (BROKER_URL=redis://...)")
    return RedisBucket(settings.broker_url, limit, settings.broker_key_prefix)


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1, so a client that waits this long gets a token."""
    return str(max(1, math.ceil(seconds)))


def init_ratelimit(app: Flask) -> None:
    """Limit authenticated requests per key (admin keys too); public routes never are.

    Runs after authentication, which leaves the caller in ``g.principal`` only on routes
    that need a key. Every limited response carries ``X-RateLimit-Limit`` (the burst)
    and ``X-RateLimit-Remaining``; a refused one is a 429 with ``Retry-After``.
    """
    limiter = make_limiter(app.config["HARK"])
    app.extensions["hark_ratelimit"] = limiter
    if limiter is None:
        return
    limit = str(limiter.limit.burst)

    @app.before_request
    def _rate_limit() -> None:
        principal = g.get("principal")
        if principal is None:
            return
        decision = limiter.take(principal.key_id)
        g._rate_limit = decision
        if not decision.allowed:
            wait = retry_after_header(decision.retry_after)
            raise APIError(429, "rate_limited",
                           f"too many requests for this API key; retry in {wait} s",
                           {"retry_after": int(wait)})

    @app.after_request
    def _rate_limit_headers(response: Response) -> Response:
        decision = g.pop("_rate_limit", None)
        if decision is not None:
            response.headers["X-RateLimit-Limit"] = limit
            response.headers["X-RateLimit-Remaining"] = str(decision.remaining)
            if not decision.allowed:
                response.headers["Retry-After"] = retry_after_header(decision.retry_after)
        return response
