"""Types shared by the clients: the ``NOT_GIVEN`` sentinel and the timeout/retry aliases."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Any, Final, Literal, TypeVar

import httpx

from ._config import RetryConfig

T = TypeVar("T")


class NotGiven:
    """"Leave this unchanged": the default of fields that ``None`` would set to null.

    ``client.collections.update("c", description=None)`` clears the description;
    leaving ``description`` out (``NOT_GIVEN``) does not send it at all.
    """

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()

FileInput = str | os.PathLike[str] | bytes | IO[bytes]
Timeout = float | httpx.Timeout | None
RequestTimeout = float | httpx.Timeout | None | NotGiven
"""``request_timeout=``: seconds (or an ``httpx.Timeout``) for each HTTP request of this
call, None for no limit, ``NOT_GIVEN`` for the client's. Distinct from ``timeout=``, the
deadline for a task to finish."""
Retries = RetryConfig | int | None
"""``retries=``: a :class:`RetryConfig`, a number of retries, or None for the client's."""
ProgressCallback = Callable[[Any], Any]
"""``on_progress(task)``: called as a waited-for task advances (async clients may pass a
coroutine function)."""
UploadCallback = Callable[[int, int | None], Any]
"""``on_upload(sent, total)``: bytes of the file sent so far, and its size if known."""


def given(value: Any) -> bool:
    return not isinstance(value, NotGiven)


def body_of(values: dict[str, Any]) -> dict[str, Any]:
    """A JSON body of the fields that were given (``None`` is sent as null)."""
    return {k: v for k, v in values.items() if given(v)}
