"""The asynchronous client's resources: ``client.tasks``, ``.collections``, ``.webhooks``."""

from __future__ import annotations

import asyncio
import builtins
import inspect
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from . import _operations as ops
from ._base import Poller, finished
from .errors import WaitTimeoutError
from .models import (
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

if TYPE_CHECKING:
    from ._async_client import AsyncClient
    from ._base import ProgressCallback, Retries


class AsyncTasks:
    """``client.tasks``: count, list, get, delete (cancels), retry, and wait for tasks."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def count(self, *, retries: Retries = None) -> TaskCounts:
        return await self._client.request(ops.count_tasks(), retries=retries)

    async def page(self, page: int = 1, per_page: int = 100, status: str | None = None, *,
                   cursor: str | None = None, retries: Retries = None) -> Page[Task]:
        """One page, newest first; pass ``cursor=page.next_cursor`` to go deeper cheaply."""
        return await self._client.request(ops.list_tasks(page, per_page, status, cursor),
                                          retries=retries)

    async def list(self, status: str | None = None, per_page: int = 100, *,
                   limit: int | None = None, retries: Retries = None) -> AsyncIterator[Task]:
        """Every task (or the first ``limit``), newest first, fetched page by page."""
        cursor, seen = None, 0
        while limit is None or seen < limit:
            size = per_page if limit is None else min(per_page, limit - seen)
            page = await self.page(per_page=size, status=status, cursor=cursor,
                                   retries=retries)
            for task in page.items:
                yield task
            seen += len(page.items)
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    async def get(self, task_id: str, *, retries: Retries = None) -> Task:
        return await self._client.request(ops.get_task(task_id), retries=retries)

    async def delete(self, task_id: str, *, retries: Retries = None) -> Task:
        """Delete the task, cancelling it if queued or running; returns its last state."""
        return await self._client.request(ops.delete_task(task_id), retries=retries)

    async def retry(self, task_id: str, *, retries: Retries = None) -> Task:
        """Run a failed or not_finished task again (:class:`ConflictError` otherwise)."""
        return await self._client.request(ops.retry_task(task_id), retries=retries)

    async def wait(self, task_id: str, timeout: float | None = None,
                   poll_interval: float = 0.5, on_progress: ProgressCallback | None = None, *,
                   retries: Retries = None) -> Task:
        """Poll until the task is finished and return it.

        ``on_progress(task)`` is called whenever its status or progress changes. Polls every
        ``poll_interval`` seconds, slowing to every 5 s while nothing changes. Raises
        :class:`TaskFailedError` if it failed, :class:`WaitTimeoutError` after ``timeout``.
        """
        poller = Poller(timeout, poll_interval)
        while True:
            task = await self.get(task_id, retries=retries)
            if poller.observe(task) and on_progress is not None:
                outcome = on_progress(task)
                if inspect.isawaitable(outcome):
                    await outcome
            if task.finished:
                return finished(task)
            delay = poller.next_delay()
            if delay is None:
                raise WaitTimeoutError(task, timeout or 0.0)
            await asyncio.sleep(delay)


class AsyncCollections:
    """``client.collections``: searchable sets of indexed media (fill them with ``index``)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, collection_id: str, name: str | None = None,
                     description: str | None = None, *, retries: Retries = None) -> Collection:
        """A new collection (``name`` defaults to its id); :class:`ConflictError` if taken."""
        call = ops.create_collection(collection_id, name, description)
        return await self._client.request(call, retries=retries)

    async def page(self, page: int = 1, per_page: int = 100, *,
                   retries: Retries = None) -> Page[Collection]:
        call = ops.list_collections(page, per_page)
        return await self._client.request(call, retries=retries)

    async def list(self, per_page: int = 100, *,
                   retries: Retries = None) -> AsyncIterator[Collection]:
        """Every collection, by id, fetched page by page."""
        number = 1
        while True:
            page = await self.page(number, per_page, retries=retries)
            for collection in page.items:
                yield collection
            if len(page.items) < per_page:
                return
            number += 1

    async def get(self, collection_id: str, *, retries: Retries = None) -> Collection:
        return await self._client.request(ops.get_collection(collection_id), retries=retries)

    async def update(self, collection_id: str, *, name: str | None = None,
                     description: str | None = None, retries: Retries = None) -> Collection:
        call = ops.update_collection(collection_id, name, description)
        return await self._client.request(call, retries=retries)

    async def delete(self, collection_id: str, *, retries: Retries = None) -> Collection:
        """Delete the collection with all its media; returns what was deleted."""
        call = ops.delete_collection(collection_id)
        return await self._client.request(call, retries=retries)

    async def media(self, collection_id: str, per_page: int = 100, *,
                    retries: Retries = None) -> AsyncIterator[Media]:
        """Every media item of the collection, oldest first, fetched page by page."""
        number = 1
        while True:
            call = ops.list_media(collection_id, number, per_page)
            page = await self._client.request(call, retries=retries)
            for media in page.items:
                yield media
            if len(page.items) < per_page:
                return
            number += 1

    async def get_media(self, collection_id: str, media_id: str, *,
                        retries: Retries = None) -> Media:
        """A media item with its transcript ``segments``."""
        call = ops.get_media(collection_id, media_id)
        return await self._client.request(call, retries=retries)

    async def delete_media(self, collection_id: str, media_id: str, *,
                           retries: Retries = None) -> Media:
        call = ops.delete_media(collection_id, media_id)
        return await self._client.request(call, retries=retries)

    async def search(self, collection_id: str, query: str, top_k: int = 10, *,
                     retries: Retries = None) -> builtins.list[SearchHit]:
        """The ``top_k`` passages closest in meaning to ``query``, best first."""
        call = ops.search(collection_id, query, top_k)
        return (await self._client.request(call, retries=retries)).items


class AsyncWebhooks:
    """``client.webhooks``: subscriptions to task events, their secrets and delivery logs.

    Methods taking a ``webhook_id`` of None act on the one-off callbacks (a task's own
    ``webhook=`` URL), which are signed with :meth:`callback_secret`.
    """

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, url: str, events: Sequence[str] | None = None,
                     description: str | None = None, *, retries: Retries = None) -> Webhook:
        """Subscribe ``url`` (to every event unless ``events``); keep the answer's ``secret``."""
        call = ops.create_webhook(url, events, description)
        return await self._client.request(call, retries=retries)

    async def list(self, *, retries: Retries = None) -> builtins.list[Webhook]:
        return (await self._client.request(ops.list_webhooks(), retries=retries)).items

    async def get(self, webhook_id: str, *, retries: Retries = None) -> Webhook:
        return await self._client.request(ops.get_webhook(webhook_id), retries=retries)

    async def update(self, webhook_id: str, *, url: str | None = None,
                     events: Sequence[str] | None = None, description: str | None = None,
                     enabled: bool | None = None, retries: Retries = None) -> Webhook:
        """Change what is given; ``enabled=True`` re-enables a webhook the server disabled."""
        call = ops.update_webhook(webhook_id, url, events, description, enabled)
        return await self._client.request(call, retries=retries)

    async def delete(self, webhook_id: str, *, retries: Retries = None) -> Webhook:
        return await self._client.request(ops.delete_webhook(webhook_id), retries=retries)

    async def rotate_secret(self, webhook_id: str, grace_seconds: int | None = None, *,
                            retries: Retries = None) -> Webhook:
        """A new secret; the old one keeps signing too for ``grace_seconds`` (server default)."""
        call = ops.rotate_webhook_secret(webhook_id, grace_seconds)
        return await self._client.request(call, retries=retries)

    async def deliveries(self, webhook_id: str | None, page: int = 1, per_page: int = 50, *,
                         cursor: str | None = None, retries: Retries = None) -> Page[Delivery]:
        """One page of the delivery log, newest attempt first (``next_cursor`` for more)."""
        call = ops.list_deliveries(webhook_id, page, per_page, cursor)
        return await self._client.request(call, retries=retries)

    async def redeliver(self, webhook_id: str | None, delivery_id: str, *,
                        retries: Retries = None) -> Delivery:
        """Send a finished delivery again (same ``webhook-id`` and body); it is queued."""
        call = ops.redeliver(webhook_id, delivery_id)
        return await self._client.request(call, retries=retries)

    async def callback_secret(self, *, retries: Retries = None) -> CallbackSecret:
        """The secret that signs one-off callbacks (created on first use)."""
        return await self._client.request(ops.callback_secret(), retries=retries)

    async def rotate_callback_secret(self, grace_seconds: int | None = None, *,
                                     retries: Retries = None) -> CallbackSecret:
        call = ops.rotate_callback_secret(grace_seconds)
        return await self._client.request(call, retries=retries)
