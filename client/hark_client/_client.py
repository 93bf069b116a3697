"""The synchronous client, on ``httpx.Client``."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from . import _operations as ops
from ._base import (
    BaseClient,
    Call,
    FileInput,
    Poller,
    Timeout,
    connection_error,
    finished,
    is_answer,
    open_upload,
)
from ._config import DEFAULT_TIMEOUT, RetryConfig
from .errors import WaitTimeoutError
from .models import Collection, Delivery, Health, Media, Page, SearchHit, Task, TaskCounts, Webhook

T = TypeVar("T")
Retries = RetryConfig | int | None
ProgressCallback = Callable[[Task], Any]


class Client(BaseClient):
    """Talks to a Hark server. Use it as a context manager, or call :meth:`close`.

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
        http_client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT)
        self.tasks = Tasks(self)
        self.collections = Collections(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (not that of an ``http_client`` you passed in)."""
        if self._owns_http:
            self._http.close()

    def request(self, call: Call[T], *, retries: Retries = None) -> T:
        """Send ``call``, retrying as configured; its parsed answer or a :class:`HarkError`."""
        policy = self._policy(retries)
        retry = 0
        while True:
            retry += 1
            with open_upload(call) as file:
                request = self._build(self._http, call, file)
                try:
                    response = self._http.send(request)
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
            time.sleep(delay)

    def health(self, *, retries: Retries = None) -> Health:
        """The server's health; ``.ok`` is False (not an error) when it is degraded."""
        return self.request(ops.health(), retries=retries)

    def analyze(
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
        return self._submit(call, wait, timeout, on_progress, retries)

    def index(
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
        return self._submit(call, wait, timeout, on_progress, retries)

    def diagnostics_sleep(
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
        submitted = self.request(call, retries=retries)
        if not wait:
            return submitted
        if submitted.finished:
            return finished(submitted)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.tasks.wait(submitted.id, timeout=remaining, on_progress=on_progress,
                               retries=retries)

    def transcript(self, task_id: str, format: str = "txt", *, retries: Retries = None) -> str:
        """A completed analysis as ``txt``, ``srt``, ``vtt`` or ``json`` text."""
        return self.request(ops.transcript(task_id, format), retries=retries)

    def search(self, collection_id: str, query: str, top_k: int = 10, *,
               retries: Retries = None) -> builtins.list[SearchHit]:
        """The ``top_k`` passages of ``collection_id`` closest in meaning to ``query``."""
        return self.collections.search(collection_id, query, top_k, retries=retries)

    def _submit(self, call: Call[Task], wait: bool, timeout: float | None,
                on_progress: ProgressCallback | None, retries: Retries) -> Task:
        task = self.request(call, retries=retries)
        if not wait:
            return task
        return self.tasks.wait(task.id, timeout=timeout, on_progress=on_progress,
                               retries=retries)


class Tasks:
    """``client.tasks``: count, list, get, delete (cancels), retry, and wait for tasks."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def count(self, *, retries: Retries = None) -> TaskCounts:
        return self._client.request(ops.count_tasks(), retries=retries)

    def page(self, page: int = 1, per_page: int = 100, status: str | None = None, *,
             cursor: str | None = None, retries: Retries = None) -> Page[Task]:
        """One page, newest first; pass ``cursor=page.next_cursor`` to go deeper cheaply."""
        return self._client.request(ops.list_tasks(page, per_page, status, cursor),
                                    retries=retries)

    def list(self, status: str | None = None, per_page: int = 100, *,
             limit: int | None = None, retries: Retries = None) -> Iterator[Task]:
        """Every task (or the first ``limit``), newest first, fetched page by page."""
        cursor, seen = None, 0
        while limit is None or seen < limit:
            size = per_page if limit is None else min(per_page, limit - seen)
            page = self.page(per_page=size, status=status, cursor=cursor, retries=retries)
            for task in page.items:
                yield task
            seen += len(page.items)
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def get(self, task_id: str, *, retries: Retries = None) -> Task:
        return self._client.request(ops.get_task(task_id), retries=retries)

    def delete(self, task_id: str, *, retries: Retries = None) -> Task:
        """Delete the task, cancelling it if queued or running; returns its last state."""
        return self._client.request(ops.delete_task(task_id), retries=retries)

    def retry(self, task_id: str, *, retries: Retries = None) -> Task:
        """Run a failed or not_finished task again (:class:`ConflictError` otherwise)."""
        return self._client.request(ops.retry_task(task_id), retries=retries)

    def wait(self, task_id: str, timeout: float | None = None, poll_interval: float = 0.5,
             on_progress: ProgressCallback | None = None, *, retries: Retries = None) -> Task:
        """Poll until the task is finished and return it.

        ``on_progress(task)`` is called whenever its status or progress changes. Polls every
        ``poll_interval`` seconds, slowing to every 5 s while nothing changes. Raises
        :class:`TaskFailedError` if it failed, :class:`WaitTimeoutError` after ``timeout``.
        """
        poller = Poller(timeout, poll_interval)
        while True:
            task = self.get(task_id, retries=retries)
            if poller.observe(task) and on_progress is not None:
                on_progress(task)
            if task.finished:
                return finished(task)
            delay = poller.next_delay()
            if delay is None:
                raise WaitTimeoutError(task, timeout or 0.0)
            time.sleep(delay)


class Collections:
    """``client.collections``: searchable sets of indexed media."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, collection_id: str, name: str | None = None,
               description: str | None = None, *, retries: Retries = None) -> Collection:
        return self._client.request(ops.create_collection(collection_id, name, description),
                                    retries=retries)

    def page(self, page: int = 1, per_page: int = 100, *,
             retries: Retries = None) -> Page[Collection]:
        return self._client.request(ops.list_collections(page, per_page), retries=retries)

    def list(self, per_page: int = 100, *, retries: Retries = None) -> Iterator[Collection]:
        """Every collection, fetched page by page."""
        number = 1
        while True:
            page = self.page(number, per_page, retries=retries)
            yield from page.items
            if len(page.items) < per_page:
                return
            number += 1

    def get(self, collection_id: str, *, retries: Retries = None) -> Collection:
        return self._client.request(ops.get_collection(collection_id), retries=retries)

    def update(self, collection_id: str, *, name: str | None = None,
               description: str | None = None, retries: Retries = None) -> Collection:
        return self._client.request(ops.update_collection(collection_id, name, description),
                                    retries=retries)

    def delete(self, collection_id: str, *, retries: Retries = None) -> None:
        self._client.request(ops.delete_collection(collection_id), retries=retries)

    def media(self, collection_id: str, *, retries: Retries = None) -> builtins.list[Media]:
        return self._client.request(ops.list_media(collection_id), retries=retries).items

    def get_media(self, collection_id: str, media_id: str, *, retries: Retries = None) -> Media:
        """A media item with its transcript ``segments``."""
        return self._client.request(ops.get_media(collection_id, media_id), retries=retries)

    def delete_media(self, collection_id: str, media_id: str, *,
                     retries: Retries = None) -> None:
        self._client.request(ops.delete_media(collection_id, media_id), retries=retries)

    def search(self, collection_id: str, query: str, top_k: int = 10, *,
               retries: Retries = None) -> builtins.list[SearchHit]:
        return self._client.request(ops.search(collection_id, query, top_k),
                                    retries=retries).items


class Webhooks:
    """``client.webhooks``: subscriptions to task events, and their deliveries."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, url: str, events: Sequence[str] | None = None, *,
               retries: Retries = None) -> Webhook:
        """Subscribe ``url``; the answer's ``secret`` (shown once) verifies deliveries."""
        return self._client.request(ops.create_webhook(url, events), retries=retries)

    def list(self, *, retries: Retries = None) -> builtins.list[Webhook]:
        return self._client.request(ops.list_webhooks(), retries=retries).items

    def get(self, webhook_id: str, *, retries: Retries = None) -> Webhook:
        return self._client.request(ops.get_webhook(webhook_id), retries=retries)

    def update(self, webhook_id: str, url: str, events: Sequence[str] | None = None, *,
               retries: Retries = None) -> Webhook:
        return self._client.request(ops.update_webhook(webhook_id, url, events),
                                    retries=retries)

    def delete(self, webhook_id: str, *, retries: Retries = None) -> None:
        self._client.request(ops.delete_webhook(webhook_id), retries=retries)

    def rotate_secret(self, webhook_id: str, *, retries: Retries = None) -> Webhook:
        return self._client.request(ops.rotate_webhook_secret(webhook_id), retries=retries)

    def deliveries(self, webhook_id: str, *,
                   retries: Retries = None) -> builtins.list[Delivery]:
        return self._client.request(ops.list_deliveries(webhook_id), retries=retries).items

    def redeliver(self, webhook_id: str, delivery_id: str, *,
                  retries: Retries = None) -> Delivery:
        return self._client.request(ops.redeliver(webhook_id, delivery_id), retries=retries)
