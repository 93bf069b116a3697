"""The asynchronous client, on ``httpx.AsyncClient``: the same methods, awaited."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Mapping, Sequence
from typing import TypeVar

import httpx

from . import _operations as ops
from ._async_resources import AsyncCollections, AsyncTasks, AsyncWebhooks
from ._base import (
    BaseClient,
    Call,
    FileInput,
    ProgressCallback,
    Retries,
    Timeout,
    connection_error,
    finished,
    is_answer,
    open_upload,
)
from ._config import DEFAULT_TIMEOUT, RetryConfig
from .models import Health, SearchHit, Task

T = TypeVar("T")


class AsyncClient(BaseClient):
    """Talks to a Hark server from asyncio. Use ``async with``, or await :meth:`aclose`.

    ``base_url`` defaults to ``$HARK_URL`` (else ``http://127.0.0.1:8000``), ``api_key`` to
    ``$HARK_API_KEY``. ``timeout`` is per HTTP request (30 s unless ``http_client`` brings
    its own); ``retries`` is a :class:`RetryConfig` or a number of retries, and every method
    takes ``retries=`` to override it for one call.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: Timeout = None,
        retries: RetryConfig | int | None = None,
        http_client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT)
        self.tasks = AsyncTasks(self)
        self.collections = AsyncCollections(self)
        self.webhooks = AsyncWebhooks(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (not that of an ``http_client`` you passed in)."""
        if self._owns_http:
            await self._http.aclose()

    close = aclose

    async def request(self, call: Call[T], *, retries: Retries = None) -> T:
        """Send ``call``, retrying as configured; its parsed answer or a :class:`HarkError`."""
        policy = self._policy(retries)
        retry = 0
        while True:
            retry += 1
            with open_upload(call) as file:
                request = self._build(self._http, call, file)
                try:
                    response = await self._http.send(request)
                except httpx.TransportError as exc:
                    delay = self._retry_delay(policy, retry, error=exc)
                    if delay is None:
                        raise connection_error(exc, str(request.url)) from exc
                else:
                    if is_answer(call, response):
                        return self._answer(call, response)
                    delay = self._retry_delay(policy, retry, response=response)
                    if delay is None:
                        return self._answer(call, response)
            await asyncio.sleep(delay)

    async def health(self, *, retries: Retries = None) -> Health:
        """The server's health; ``.ok`` is False (not an error) when it is degraded."""
        return await self.request(ops.health(), retries=retries)

    async def analyze(
        self,
        file: FileInput | None = None,
        *,
        url: str | None = None,
        filename: str | None = None,
        model: str | None = None,
        language: str | None = None,
        task: str | None = None,
        word_timestamps: bool | None = None,
        priority: int | None = None,
        device: str | None = None,
        queue: str | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
        wait: bool = False,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        retries: Retries = None,
    ) -> Task:
        """Transcribe (or translate) a file or URL.

        Returns the submitted task at once; with ``wait=True`` it waits (up to ``timeout``
        seconds, calling ``on_progress(task)`` as it advances) and returns the completed
        task, whose ``.transcript`` holds the result. Raises :class:`TaskFailedError` if
        it failed, :class:`WaitTimeoutError` if it did not finish in time.
        """
        options = ops.analyze_options(model, language, task, word_timestamps, priority,
                                      device, queue, webhook, webhook_events)
        call = ops.submit_media("/analyze", file, url, filename, options)
        return await self._submit(call, wait, timeout, on_progress, retries)

    async def index(
        self,
        file: FileInput | None = None,
        *,
        collection: str,
        url: str | None = None,
        filename: str | None = None,
        media_id: str | None = None,
        reindex_if_exists: bool | None = None,
        model: str | None = None,
        language: str | None = None,
        priority: int | None = None,
        device: str | None = None,
        queue: str | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
        wait: bool = False,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        retries: Retries = None,
    ) -> Task:
        """Transcribe a file or URL into ``collection`` for search; ``wait`` as in analyze."""
        options = ops.index_options(collection, media_id, reindex_if_exists, model, language,
                                    priority, device, queue, webhook, webhook_events)
        call = ops.submit_media("/index", file, url, filename, options)
        return await self._submit(call, wait, timeout, on_progress, retries)

    async def diagnostics_sleep(
        self,
        seconds: float,
        *,
        fail: bool = False,
        priority: int | None = None,
        device: str | None = None,
        queue: str | None = None,
        defer: bool = False,
        wait: bool = False,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        retries: Retries = None,
    ) -> Task:
        """A task that sleeps on a worker, then completes or fails (servers with DIAGNOSTICS=1).

        ``defer=False`` lets the server hold the request until the task finishes (up to
        ``timeout``, 30 s by default), ``defer=True`` returns at once. ``wait=True`` then
        polls until it is finished and raises :class:`TaskFailedError` if it failed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        call = ops.diagnostics_sleep(seconds, fail, priority, device, queue, defer, timeout)
        submitted = await self.request(call, retries=retries)
        if not wait:
            return submitted
        if submitted.finished:
            return finished(submitted)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return await self.tasks.wait(submitted.id, timeout=remaining,
                                     on_progress=on_progress, retries=retries)

    async def transcript(self, task_id: str, format: str = "txt", *,
                         retries: Retries = None) -> str:
        """A completed analysis as ``txt``, ``srt``, ``vtt`` or ``json`` text."""
        return await self.request(ops.transcript(task_id, format), retries=retries)

    async def search(self, collection_id: str, query: str, top_k: int = 10, *,
                     retries: Retries = None) -> builtins.list[SearchHit]:
        """The ``top_k`` passages of ``collection_id`` closest in meaning to ``query``."""
        return await self.collections.search(collection_id, query, top_k, retries=retries)

    async def _submit(self, call: Call[Task], wait: bool, timeout: float | None,
                      on_progress: ProgressCallback | None, retries: Retries) -> Task:
        task = await self.request(call, retries=retries)
        if not wait:
            return task
        return await self.tasks.wait(task.id, timeout=timeout, on_progress=on_progress,
                                     retries=retries)

