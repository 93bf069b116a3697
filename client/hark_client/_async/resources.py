"""The client's resources: ``client.tasks``, ``.collections``, ``.webhooks``.

Every method takes ``retries=`` and ``request_timeout=`` (see the client). Listings come
two ways: ``page()`` for one page, and an iterator that fetches page after page.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from .. import _operations as ops
from .._base import Call
from .._types import NOT_GIVEN, NotGiven, ProgressCallback, RequestTimeout, Retries
from ..models import (
    CallbackSecret,
    Collection,
    Delivery,
    Media,
    Page,
    SearchHit,
    Task,
    TaskCounts,
    Webhook,
)
from ..models_platform import TaskEvent, TaskUpdate
from .streaming import follow_until_finished, poll_until_finished, stream_updates

if TYPE_CHECKING:
    from .client import AsyncClient

T = TypeVar("T")


class _AsyncResource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _send(self, call: Call[T], retries: Retries,
                    request_timeout: RequestTimeout) -> T:
        return await self._client.request(call, retries=retries,
                                          request_timeout=request_timeout)


class AsyncTasks(_AsyncResource):
    """``client.tasks``: count, list, get, events, delete (cancels), retry, stream, wait."""

    async def count(self, *, retries: Retries = None,
                    request_timeout: RequestTimeout = NOT_GIVEN) -> TaskCounts:
        return await self._send(ops.count_tasks(), retries, request_timeout)

    async def page(self, page: int = 1, per_page: int = 100, status: str | None = None, *,
                   cursor: str | None = None, retries: Retries = None,
                   request_timeout: RequestTimeout = NOT_GIVEN) -> Page[Task]:
        """One page, newest first; pass ``cursor=page.next_cursor`` to go deeper cheaply."""
        return await self._send(ops.list_tasks(page, per_page, status, cursor), retries,
                                request_timeout)

    async def list(self, status: str | None = None, per_page: int = 100, *,
                   limit: int | None = None, cursor: str | None = None,
                   retries: Retries = None, request_timeout: RequestTimeout = NOT_GIVEN,
                   ) -> AsyncIterator[Task]:
        """Every task (or the first ``limit``; from ``cursor``), newest first, page by page."""
        seen = 0
        while limit is None or seen < limit:
            size = per_page if limit is None else min(per_page, limit - seen)
            page = await self.page(per_page=size, status=status, cursor=cursor,
                                   retries=retries, request_timeout=request_timeout)
            for task in page.items:
                yield task
            seen += len(page.items)
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    async def get(self, task_id: str, *, retries: Retries = None,
                  request_timeout: RequestTimeout = NOT_GIVEN) -> Task:
        return await self._send(ops.get_task(task_id), retries, request_timeout)

    async def events(self, task_id: str, *, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> builtins.list[TaskEvent]:
        """The task's audit trail, oldest first: each status change and notable step."""
        return (await self._send(ops.task_events(task_id), retries, request_timeout)).items

    async def delete(self, task_id: str, *, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> Task:
        """Delete the task, cancelling it if queued or running; returns its last state."""
        return await self._send(ops.delete_task(task_id), retries, request_timeout)

    async def retry(self, task_id: str, *, retries: Retries = None,
                    request_timeout: RequestTimeout = NOT_GIVEN) -> Task:
        """Run a failed or not_finished task again (:class:`ConflictError` otherwise)."""
        return await self._send(ops.retry_task(task_id), retries, request_timeout)

    async def stream(self, task_id: str, *, timeout: float | None = None,
                     poll_interval: float = 0.5, idle_timeout: float = 20.0,
                     retries: Retries = None, request_timeout: RequestTimeout = NOT_GIVEN,
                     ) -> AsyncIterator[TaskUpdate]:
        """The task's updates as they happen, through ``"end"``: ``TaskUpdate``s of kind
        ``"task_event"`` (its audit trail, replayed from the start), ``"progress"`` and
        ``"end"``.

        Reads ``GET /tasks/<id>/stream`` (Server-Sent Events). A dropped connection is
        resumed with ``Last-Event-ID``; nothing is delivered twice. Where the server or
        a proxy does not answer with an event stream (404, 405, 429, another content
        type, or nothing for ``idle_timeout`` seconds on the first connection, as when
        a proxy buffers it), it polls ``GET /tasks/<id>`` instead (every
        ``poll_interval`` seconds, slowing to 5 s while nothing changes), yielding
        ``"progress"`` on each change and ``"end"`` (``polled=True``) once finished.
        Raises :class:`WaitTimeoutError` after ``timeout`` seconds.
        """
        async for update in stream_updates(self, task_id, timeout, poll_interval,
                                           idle_timeout, retries, request_timeout):
            yield update

    async def wait(self, task_id: str, timeout: float | None = None,
                   poll_interval: float = 0.5, on_progress: ProgressCallback | None = None, *,
                   stream: bool = True, retries: Retries = None,
                   request_timeout: RequestTimeout = NOT_GIVEN) -> Task:
        """Wait until the task is finished and return it.

        Follows ``stream()`` (which polls where the stream is not available), or polls
        with ``stream=False``. ``on_progress(task)`` is called whenever its status or
        progress changes; from the stream that task holds id, status, progress and
        error, the last call gets the whole task. Polling is every ``poll_interval``
        seconds, slowing to every 5 s while nothing changes. Raises
        :class:`TaskFailedError` if it failed, :class:`WaitTimeoutError` after ``timeout``.
        """
        if not stream:
            return await poll_until_finished(self, task_id, timeout, poll_interval,
                                             on_progress, retries, request_timeout)
        return await follow_until_finished(self, task_id, timeout, poll_interval,
                                           on_progress, retries, request_timeout)


class AsyncCollections(_AsyncResource):
    """``client.collections``: searchable sets of indexed media (fill them with ``index``)."""

    async def create(self, collection_id: str, name: str | None = None,
                     description: str | None = None, *, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> Collection:
        """A new collection (``name`` defaults to its id); :class:`ConflictError` if taken."""
        call = ops.create_collection(collection_id, name, description)
        return await self._send(call, retries, request_timeout)

    async def page(self, page: int = 1, per_page: int = 100, *, retries: Retries = None,
                   request_timeout: RequestTimeout = NOT_GIVEN) -> Page[Collection]:
        return await self._send(ops.list_collections(page, per_page), retries,
                                request_timeout)

    async def list(self, per_page: int = 100, *, retries: Retries = None,
                   request_timeout: RequestTimeout = NOT_GIVEN) -> AsyncIterator[Collection]:
        """Every collection, by id, fetched page by page."""
        number = 1
        while True:
            page = await self.page(number, per_page, retries=retries,
                                   request_timeout=request_timeout)
            for collection in page.items:
                yield collection
            if len(page.items) < per_page:
                return
            number += 1

    async def get(self, collection_id: str, *, retries: Retries = None,
                  request_timeout: RequestTimeout = NOT_GIVEN) -> Collection:
        return await self._send(ops.get_collection(collection_id), retries, request_timeout)

    async def update(self, collection_id: str, *, name: str | NotGiven = NOT_GIVEN,
                     description: str | None | NotGiven = NOT_GIVEN, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> Collection:
        """Change what is given; ``description=None`` clears the description."""
        call = ops.update_collection(collection_id, name, description)
        return await self._send(call, retries, request_timeout)

    async def delete(self, collection_id: str, *, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> Collection:
        """Delete the collection with all its media; returns what was deleted."""
        return await self._send(ops.delete_collection(collection_id), retries,
                                request_timeout)

    async def media_page(self, collection_id: str, page: int = 1, per_page: int = 100, *,
                         retries: Retries = None,
                         request_timeout: RequestTimeout = NOT_GIVEN) -> Page[Media]:
        """One page of the collection's media, oldest first."""
        return await self._send(ops.list_media(collection_id, page, per_page), retries,
                                request_timeout)

    async def media(self, collection_id: str, per_page: int = 100, *,
                    retries: Retries = None,
                    request_timeout: RequestTimeout = NOT_GIVEN) -> AsyncIterator[Media]:
        """Every media item of the collection, oldest first, fetched page by page."""
        number = 1
        while True:
            page = await self.media_page(collection_id, number, per_page, retries=retries,
                                         request_timeout=request_timeout)
            for media in page.items:
                yield media
            if len(page.items) < per_page:
                return
            number += 1

    async def get_media(self, collection_id: str, media_id: str, *, retries: Retries = None,
                        request_timeout: RequestTimeout = NOT_GIVEN) -> Media:
        """A media item with its transcript ``segments``."""
        return await self._send(ops.get_media(collection_id, media_id), retries,
                                request_timeout)

    async def delete_media(self, collection_id: str, media_id: str, *,
                           retries: Retries = None,
                           request_timeout: RequestTimeout = NOT_GIVEN) -> Media:
        return await self._send(ops.delete_media(collection_id, media_id), retries,
                                request_timeout)

    async def search(self, collection_id: str, query: str, top_k: int = 10, *,
                     mode: str | None = None, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN,
                     ) -> builtins.list[SearchHit]:
        """The collection's ``top_k`` passages that best match ``query``, best first.

        ``mode``: ``"semantic"`` (by meaning), ``"keyword"`` (by words: full-text, all
        words must occur, ``"quoted phrase"``, ``or``, ``-word``) or ``"hybrid"`` (both,
        fused by reciprocal rank fusion); None leaves the server's default, hybrid. Each
        hit says why it matched (``vector_rank``, ``keyword_rank``, ``similarity``).
        """
        call = ops.search(collection_id, query, top_k, mode)
        return (await self._send(call, retries, request_timeout)).items


class AsyncWebhooks(_AsyncResource):
    """``client.webhooks``: subscriptions to task events, their secrets and delivery logs.

    Methods taking a ``webhook_id`` of None act on the one-off callbacks (a task's own
    ``webhook=`` URL), which are signed with :meth:`callback_secret`.
    """

    async def create(self, url: str, events: Sequence[str] | None = None,
                     description: str | None = None, *, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> Webhook:
        """Subscribe ``url`` (to every event unless ``events``); keep the answer's ``secret``."""
        call = ops.create_webhook(url, events, description)
        return await self._send(call, retries, request_timeout)

    async def list(self, *, retries: Retries = None,
                   request_timeout: RequestTimeout = NOT_GIVEN) -> builtins.list[Webhook]:
        return (await self._send(ops.list_webhooks(), retries, request_timeout)).items

    async def get(self, webhook_id: str, *, retries: Retries = None,
                  request_timeout: RequestTimeout = NOT_GIVEN) -> Webhook:
        return await self._send(ops.get_webhook(webhook_id), retries, request_timeout)

    async def update(self, webhook_id: str, *, url: str | NotGiven = NOT_GIVEN,
                     events: Sequence[str] | None | NotGiven = NOT_GIVEN,
                     description: str | None | NotGiven = NOT_GIVEN,
                     enabled: bool | NotGiven = NOT_GIVEN, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> Webhook:
        """Change what is given: ``events=None`` means every event, ``description=None``
        clears it, ``enabled=True`` re-enables a webhook the server disabled."""
        call = ops.update_webhook(webhook_id, url, events, description, enabled)
        return await self._send(call, retries, request_timeout)

    async def delete(self, webhook_id: str, *, retries: Retries = None,
                     request_timeout: RequestTimeout = NOT_GIVEN) -> Webhook:
        return await self._send(ops.delete_webhook(webhook_id), retries, request_timeout)

    async def rotate_secret(self, webhook_id: str, grace_seconds: int | None = None, *,
                            retries: Retries = None,
                            request_timeout: RequestTimeout = NOT_GIVEN) -> Webhook:
        """A new secret; the old one keeps signing too for ``grace_seconds`` (server default)."""
        call = ops.rotate_webhook_secret(webhook_id, grace_seconds)
        return await self._send(call, retries, request_timeout)

    async def deliveries(self, webhook_id: str | None, page: int = 1, per_page: int = 50, *,
                         cursor: str | None = None, retries: Retries = None,
                         request_timeout: RequestTimeout = NOT_GIVEN) -> Page[Delivery]:
        """One page of the delivery log, newest attempt first (``next_cursor`` for more)."""
        call = ops.list_deliveries(webhook_id, page, per_page, cursor)
        return await self._send(call, retries, request_timeout)

    async def iter_deliveries(self, webhook_id: str | None, per_page: int = 50, *,
                              limit: int | None = None, cursor: str | None = None,
                              retries: Retries = None,
                              request_timeout: RequestTimeout = NOT_GIVEN,
                              ) -> AsyncIterator[Delivery]:
        """The whole delivery log (or its first ``limit`` attempts), following cursors."""
        seen = 0
        while limit is None or seen < limit:
            size = per_page if limit is None else min(per_page, limit - seen)
            page = await self.deliveries(webhook_id, per_page=size, cursor=cursor,
                                         retries=retries, request_timeout=request_timeout)
            for delivery in page.items:
                yield delivery
            seen += len(page.items)
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    async def redeliver(self, webhook_id: str | None, delivery_id: str, *,
                        retries: Retries = None,
                        request_timeout: RequestTimeout = NOT_GIVEN) -> Delivery:
        """Send a finished delivery again (same ``webhook-id`` and body); it is queued."""
        return await self._send(ops.redeliver(webhook_id, delivery_id), retries,
                                request_timeout)

    async def callback_secret(self, *, retries: Retries = None,
                              request_timeout: RequestTimeout = NOT_GIVEN) -> CallbackSecret:
        """The secret that signs one-off callbacks (created on first use)."""
        return await self._send(ops.callback_secret(), retries, request_timeout)

    async def rotate_callback_secret(self, grace_seconds: int | None = None, *,
                                     retries: Retries = None,
                                     request_timeout: RequestTimeout = NOT_GIVEN,
                                     ) -> CallbackSecret:
        call = ops.rotate_callback_secret(grace_seconds)
        return await self._send(call, retries, request_timeout)


