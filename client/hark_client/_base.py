"""What the sync and async clients share: settings, requests as data, uploads, polling.

Each API operation is a :class:`Call` (built in ``_operations``): method, path, body and
the function that parses the answer. The two clients differ only in how they send it and
how they sleep, so their behaviour cannot drift apart.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import httpx

from ._config import API_KEY_ENV, DEFAULT_URL, URL_ENV, RetryConfig, coerce_retries
from ._version import __version__
from .errors import APIConnectionError, APITimeoutError, TaskFailedError, error_for_response
from .models import Task

log = logging.getLogger("hark_client")
T = TypeVar("T")
FileInput = str | os.PathLike[str] | bytes | IO[bytes]
Timeout = float | httpx.Timeout | None
Retries = RetryConfig | int | None
"""``retries=``: a :class:`RetryConfig`, a number of retries, or None for the client's."""
ProgressCallback = Callable[[Task], Any]
"""``on_progress(task)``: called as a waited-for task advances (async clients may pass a
coroutine function)."""


class Upload:
    """A file to send as multipart ``file``: a path, bytes, or a binary file object.

    A path is opened afresh for every attempt; a file object is sent from its start (httpx
    rewinds it), so a retried upload is sent whole.
    """

    def __init__(self, source: FileInput, filename: str | None = None) -> None:
        self.source = source
        if isinstance(source, str | os.PathLike):
            self.filename = filename or Path(source).name
        elif isinstance(source, bytes | bytearray | memoryview):
            self.filename = filename or "upload"
        elif hasattr(source, "read"):
            name = getattr(source, "name", None)
            self.filename = filename or (Path(name).name if isinstance(name, str) else "upload")
        else:
            raise TypeError("file must be a path, bytes or a binary file object, "
                            f"not {type(source).__name__}")
        guessed = mimetypes.guess_type(self.filename)[0]
        self.content_type = guessed or "application/octet-stream"

    @contextmanager
    def open(self) -> Iterator[tuple[str, IO[bytes], str]]:
        if isinstance(self.source, str | os.PathLike):
            with open(self.source, "rb") as handle:
                yield self.filename, handle, self.content_type
        elif isinstance(self.source, bytes | bytearray | memoryview):
            yield self.filename, io.BytesIO(self.source), self.content_type
        else:
            yield self.filename, self.source, self.content_type  # type: ignore[misc]


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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any],
               file: tuple[str, IO[bytes], str] | None) -> httpx.Request:
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if self.timeout is not None:
            timeout = httpx.Timeout(self.timeout)
        if call.min_read_timeout is not None:
            base = timeout if isinstance(timeout, httpx.Timeout) else http.timeout
            read = max(base.read or 0.0, call.min_read_timeout + 10.0)
            timeout = httpx.Timeout(base.connect, read=read, write=base.write, pool=base.pool)
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=_clean(call.params),
            json=call.json,
            data=_form(call.form) if file is not None else None,
            files={"file": file} if file is not None else None,
            headers=self.headers,
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


def read_json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    return response.json()


def read_text(response: httpx.Response) -> str:
    return response.text
