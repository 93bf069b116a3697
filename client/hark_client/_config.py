"""Client settings: where the API is, and when and how long to wait before retrying."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "HARK_URL"
API_KEY_ENV = "HARK_API_KEY"
DEFAULT_TIMEOUT = 30.0

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryConfig:
    """When a request is sent again, and how long the client waits before it does.

    Retried: connection errors and timeouts, 429 (waiting ``Retry-After`` when the server
    sends it), and 5xx. Never retried: any other 4xx, which would fail the same way again.
    The n-th retry waits ``backoff_base * 2 ** (n - 1)`` seconds, at most ``backoff_max``,
    with up to ``jitter`` of that (a fraction) added or removed at random.

    A retried submission carries the ``Idempotency-Key`` of its first attempt, so a
    retry after a lost response names the task the first attempt made.
    """

    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    """A ``Retry-After`` longer than this is not waited for: the error is raised."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff times must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")

    @classmethod
    def none(cls) -> RetryConfig:
        """Never retry."""
        return cls(max_retries=0)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** max(0, retry - 1))
        if self.jitter:
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, delay)

    def delay_after_response(self, response: httpx.Response, retry: int) -> float | None:
        """Seconds to wait before retrying after ``response``, or None not to retry."""
        if retry > self.max_retries or response.status_code not in RETRYABLE_STATUSES:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            return self.backoff(retry)
        if retry_after > self.max_retry_after:
            return None
        return retry_after

    def delay_after_error(self, error: httpx.TransportError, retry: int) -> float | None:
        """Seconds to wait before retrying after a transport error, or None not to retry."""
        if retry > self.max_retries:
            return None
        if isinstance(error, httpx.TimeoutException | httpx.NetworkError
                      | httpx.RemoteProtocolError):
            return self.backoff(retry)
        return None  # proxy, protocol or unsupported-scheme errors will not go away


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def coerce_retries(value: RetryConfig | int | None, default: RetryConfig) -> RetryConfig:
    """``retries=`` as callers pass it: a config, a number of retries, or None (default)."""
    if value is None:
        return default
    if isinstance(value, RetryConfig):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"retries must be a RetryConfig or an int, not {type(value).__name__}")
    return RetryConfig(
        max_retries=value,
        backoff_base=default.backoff_base,
        backoff_max=default.backoff_max,
        jitter=default.jitter,
        max_retry_after=default.max_retry_after,
    )
