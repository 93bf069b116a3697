"""Every error the client raises derives from :class:`HarkError`.

HTTP errors carry what the server said: ``status_code``, the stable machine-readable
``code`` (``"not_found"``, ``"validation_error"``...), the human ``message``, the decoded
``body`` and the response ``headers``. Pick the class to catch by what you will do next::

    try:
        client.tasks.retry(task_id)
    except hark_client.ConflictError:
        ...  # not failed: nothing to retry
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import httpx

from ._config import parse_retry_after

if TYPE_CHECKING:
    from .models import Task


class HarkError(Exception):
    """Base of every error raised by the Hark client."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        body: Any = None,
        headers: httpx.Headers | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.body = body
        self.headers = headers if headers is not None else httpx.Headers()
        self.response = response

    @property
    def details(self) -> Any:
        """The ``details`` of the server's error body (field errors of a 400), if any."""
        return self.body.get("details") if isinstance(self.body, dict) else None

    def __str__(self) -> str:
        if self.status_code is None:
            return self.message
        code = f" {self.code}" if self.code else ""
        return f"{self.status_code}{code}: {self.message}"


class ValidationError(HarkError):
    """400 or 422: the request was malformed or a field was invalid (see ``details``)."""


class AuthenticationError(HarkError):
    """401: the API key is missing or unknown."""


class PermissionDeniedError(HarkError):
    """403: the API key may not do this."""


class NotFoundError(HarkError):
    """404: no such resource (or it belongs to another key's owner)."""


class ConflictError(HarkError):
    """409: the resource is not in a state that allows this (e.g. retrying a completed task)."""


class PayloadTooLargeError(HarkError):
    """413: the upload is larger than the server accepts."""


class UnsupportedMediaTypeError(HarkError):
    """415: the request's body is not of a type the endpoint takes."""


class RateLimitError(HarkError):
    """429: too many requests; ``retry_after`` says how many seconds to wait, if known."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(HarkError):
    """5xx: the server failed; retrying later may succeed."""


class ServiceUnavailableError(ServerError):
    """503: the database or task queue is briefly unavailable; see ``retry_after``."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class APIConnectionError(HarkError):
    """The server could not be reached, or the connection failed mid-request."""


class APITimeoutError(APIConnectionError):
    """The HTTP request timed out (see the client's ``timeout``)."""


class TaskFailedError(HarkError):
    """The awaited task finished as ``failed``; ``task`` is its final state."""

    def __init__(self, task: Task) -> None:
        error = task.error if isinstance(task.error, dict) else {"message": task.error}
        kind = error.get("type") or "error"
        detail = error.get("message") or "no message"
        super().__init__(f"task {task.id} failed: {kind}: {detail}")
        self.task = task


class WaitTimeoutError(HarkError, builtins.TimeoutError):
    """The task did not finish within the wait's ``timeout``; ``task`` is its last state.

    The task itself keeps running: wait again, or delete it.
    """

    def __init__(self, task: Task, timeout: float) -> None:
        super().__init__(
            f"task {task.id} did not finish within {timeout:g}s "
            f"(status {task.status}, {task.progress or 0}%)"
        )
        self.task = task
        self.timeout = timeout


class WebhookVerificationError(HarkError):
    """A webhook's signature, timestamp or headers did not verify."""


_BY_STATUS: dict[int, type[HarkError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_for_response(response: httpx.Response) -> HarkError:
    """The error matching an HTTP error response, filled from its JSON error body."""
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else HarkError)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    code = message = None
    if isinstance(body, dict):
        code = body.get("error") if isinstance(body.get("error"), str) else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
    if not message:
        text = body if isinstance(body, str) and body.strip() else response.reason_phrase
        message = (text or f"HTTP {status}").strip()[:500]
    return cls(message, status_code=status, code=code, body=body, headers=response.headers,
               response=response)
