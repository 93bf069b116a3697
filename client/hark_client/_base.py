"""What the sync and async clients share: settings, requests as data, uploads, polling.

Each API operation is a :class:`Call` (built in ``_operations``): method, path, body and
the function that parses the answer. The two clients differ only in how they send it and
how they sleep, so their behaviour cannot drift apart.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar

import httpx

from ._config import API_KEY_ENV, DEFAULT_URL, URL_ENV, RetryConfig, coerce_retries
from ._logging import log, log_request, log_response, setup_logging
from ._types import (
    FileInput,
    NotGiven,
    ProgressCallback,
    RequestTimeout,
    Retries,
    Timeout,
    given,
)
from ._uploads import Upload
from ._version import __version__
from .errors import APIConnectionError, APITimeoutError, TaskFailedError, error_for_response
from .models import Task

T = TypeVar("T")
__all__ = ["FileInput", "Upload", "ProgressCallback", "RequestTimeout", "Retries", "Timeout",
           "log_request", "log_response"]
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass
class Call(Generic[T]):
    """One API request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    form: dict[str, Any] | None = None
    upload: Upload | None = None
    ok_statuses: frozenset[int] = field(default_factory=frozenset)
    """Error statuses whose body is still the answer (``/health`` is 503 when degraded)."""
    min_read_timeout: float | None = None
    """The server holds this request open this long (a synchronous wait)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers, sent on every attempt (the ``Idempotency-Key`` of a submission)."""


class BaseClient:
    """Configuration and request plumbing shared by :class:`Client` and :class:`AsyncClient`."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: Timeout,
        retries: RetryConfig | int | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout = timeout
        self.retries = coerce_retries(retries, RetryConfig())
        self.headers = {"user-agent": f"hark-client/{__version__}",
                        "accept": "application/json", **(headers or {})}
        if self.api_key:
            self.headers["x-api-key"] = self.api_key
        self._secrets = (self.api_key,) if self.api_key else ()
        setup_logging()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _copy_with(self, timeout: Timeout | NotGiven, retries: Retries,
                   headers: Mapping[str, str] | None) -> Any:
        """A copy sharing the connection pool, with other defaults (``with_options``)."""
        clone = copy.copy(self)
        clone._owns_http = False  # type: ignore[attr-defined]
        if given(timeout):
            clone.timeout = timeout  # type: ignore[assignment]
        clone.retries = coerce_retries(retries, self.retries)
        clone.headers = {**self.headers, **(headers or {})}
        clone._attach()  # type: ignore[attr-defined]
        return clone

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any],
               file: tuple[str, IO[bytes], str] | None,
               request_timeout: RequestTimeout) -> httpx.Request:
        chosen = request_timeout if given(request_timeout) else self.timeout
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if chosen is not None or given(request_timeout):
            timeout = httpx.Timeout(chosen)  # type: ignore[arg-type]
        if call.min_read_timeout is not None:
            base = timeout if isinstance(timeout, httpx.Timeout) else http.timeout
            read = None if base.read is None else max(base.read, call.min_read_timeout + 10.0)
            timeout = httpx.Timeout(base.connect, read=read, write=base.write, pool=base.pool)
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=_clean(call.params),
            json=call.json,
            data=_form(call.form) if file is not None else None,
            files={"file": file} if file is not None else None,
            headers={**self.headers, **call.headers},
            timeout=timeout,
        )

    @staticmethod
    def _answer(call: Call[T], response: httpx.Response) -> T:
        if response.is_error and response.status_code not in call.ok_statuses:
            raise error_for_response(response)
        return call.parse(response)

    @staticmethod
    def _retry_delay(policy: RetryConfig, retry: int, response: httpx.Response | None = None,
                     error: httpx.TransportError | None = None) -> float | None:
        """Seconds before the next attempt, or None to stop (and return or raise)."""
        if response is not None:
            delay = policy.delay_after_response(response, retry)
            what = f"HTTP {response.status_code}"
        else:
            assert error is not None
            delay = policy.delay_after_error(error, retry)
            what = type(error).__name__
        if delay is not None:
            log.info("retrying (%d/%d) in %.2fs after %s", retry, policy.max_retries, delay, what)
        return delay

    def _policy(self, retries: RetryConfig | int | None) -> RetryConfig:
        return coerce_retries(retries, self.retries)


@contextmanager
def open_upload(call: Call[Any]) -> Iterator[tuple[str, IO[bytes], str] | None]:
    """The call's file, opened (or rewound) for one attempt; None without a file."""
    if call.upload is None:
        yield None
    else:
        with call.upload.open() as file:
            yield file


def is_answer(call: Call[Any], response: httpx.Response) -> bool:
    """A response to return or raise now, without considering a retry."""
    return not response.is_error or response.status_code in call.ok_statuses


def connection_error(error: httpx.TransportError, request_url: str) -> APIConnectionError:
    cls = APITimeoutError if isinstance(error, httpx.TimeoutException) else APIConnectionError
    detail = str(error) or type(error).__name__
    return cls(f"could not reach {request_url}: {detail}")


def _clean(params: dict[str, Any] | None) -> dict[str, str] | None:
    """Query parameters without Nones; booleans as ``true``/``false``."""
    if not params:
        return None
    return {k: _text(v) for k, v in params.items() if v is not None}


def _form(form: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (form or {}).items():
        if value is None:
            continue
        out[key] = [_text(v) for v in value] if isinstance(value, list | tuple) else _text(value)
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Poller:
    """When to poll a task next: soon after a change, less often while nothing changes."""

    def __init__(self, timeout: float | None, interval: float, max_interval: float = 5.0,
                 factor: float = 1.5) -> None:
        if interval <= 0:
            raise ValueError("poll_interval must be > 0")
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.base = interval
        self.interval = interval
        self.max_interval = max(max_interval, interval)
        self.factor = factor
        self._seen: tuple[Any, Any] | None = None

    def observe(self, task: Task) -> bool:
        """Record the task's state; True if status or progress changed (or first look)."""
        state = (task.status, task.progress)
        changed = state != self._seen
        self._seen = state
        if changed:
            self.interval = self.base
        return changed

    def next_delay(self) -> float | None:
        """Seconds to sleep before the next poll; None once the deadline has passed."""
        delay = self.interval
        self.interval = min(self.max_interval, self.interval * self.factor)
        if self.deadline is None:
            return delay
        remaining = self.deadline - time.monotonic()
        return None if remaining <= 0 else min(delay, remaining)


def finished(task: Task) -> Task:
    """The finished task, or :class:`TaskFailedError` if it failed."""
    if task.failed:
        raise TaskFailedError(task)
    return task


async def sleep_async(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep_sync(seconds: float) -> None:
    time.sleep(seconds)


async def notify_async(callback: Callable[..., Any] | None, *args: Any) -> None:
    """Call ``callback(*args)``, awaiting it if it is a coroutine function."""
    if callback is not None:
        outcome = callback(*args)
        if inspect.isawaitable(outcome):
            await outcome


def notify_sync(callback: Callable[..., Any] | None, *args: Any) -> None:
    if callback is not None:
        callback(*args)


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (a ``time.monotonic()``), at least 0; None: none."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def read_json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    return response.json()


def read_text(response: httpx.Response) -> str:
    return response.text
