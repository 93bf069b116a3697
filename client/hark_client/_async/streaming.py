"""``client.tasks.stream(id)``: the task's Server-Sent Events, reconnecting with
``Last-Event-ID`` when a connection drops, and polling ``GET /tasks/<id>`` instead where
the stream is not to be had (an older server, or a proxy that refuses or buffers it);
and ``tasks.wait``, which follows it (or polls)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from .. import _operations as ops
from .._base import Poller, finished, notify_async, sleep_async
from .._logging import headers_for_log, log, log_request
from .._sse import StreamState, is_event_stream
from .._types import ProgressCallback, RequestTimeout, Retries, given
from ..errors import WaitTimeoutError
from ..models import Task
from ..models_platform import TaskUpdate

if TYPE_CHECKING:
    from .resources import AsyncTasks


def _timeout(http: Any, chosen: Any, read: float) -> httpx.Timeout:
    """The client's timeouts, but ``read``: the longest silence the stream may keep."""
    base = chosen if isinstance(chosen, httpx.Timeout) else (
        http.timeout if chosen is None else httpx.Timeout(chosen))
    return httpx.Timeout(base.connect, read=read, write=base.write, pool=base.pool)


async def stream_updates(tasks: AsyncTasks, task_id: str, timeout: float | None,
                         poll_interval: float, idle_timeout: float, retries: Retries,
                         request_timeout: RequestTimeout) -> AsyncIterator[TaskUpdate]:
    """What ``tasks.stream(id)`` yields (see there)."""
    client = tasks._client
    state = StreamState(task_id, timeout, idle_timeout)
    policy = client._policy(retries)
    chosen = request_timeout if given(request_timeout) else client.timeout
    failures = 0
    while True:
        call = ops.stream_task(task_id, state.connect())
        request = client._build(client._http, call, None,
                                _timeout(client._http, chosen, state.read_timeout()))
        log_request(request, client._secrets)
        streamed, updates = True, []
        try:
            response = await client._http.send(request, stream=True)
        except httpx.TransportError as exc:
            log.info("task stream: %s", type(exc).__name__)
        else:
            try:
                content_type = response.headers.get("content-type", "")
                log.debug("response: GET %s -> %d headers=%s (stream)", request.url.path,
                          response.status_code, headers_for_log(response.headers))
                streamed = is_event_stream(response.status_code, content_type)
                if streamed:
                    async for chunk in response.aiter_bytes():
                        updates = state.feed(chunk)
                        if state.ended:
                            break  # closed first: the end is yielded after
                        for update in updates:
                            yield update
            except httpx.TransportError as exc:  # dropped, or silent past the read timeout
                log.info("task stream interrupted: %s", type(exc).__name__)
            finally:
                await response.aclose()
            if state.ended:
                for update in updates:
                    yield update
                return
        if state.timed_out():
            raise state.timeout_error()
        failures = 0 if state.received else failures + 1
        if not streamed or failures > policy.max_retries or (
                state.connections == 1 and not state.received):
            break  # not an event stream, unreachable, or a proxy buffering it
        await sleep_async(state.reconnect_delay())
    log.info("task stream unavailable: polling GET /tasks/%s", task_id)
    poller = Poller(state.left(), poll_interval)
    while True:
        task = await tasks.get(task_id, retries=retries, request_timeout=request_timeout)
        poller.observe(task)
        for update in state.polled(task):
            yield update
        if state.ended:
            return
        delay = poller.next_delay()
        if delay is None:
            raise state.timeout_error()
        await sleep_async(delay)


async def follow_until_finished(tasks: AsyncTasks, task_id: str, timeout: float | None,
                                poll_interval: float, on_progress: ProgressCallback | None,
                                retries: Retries, request_timeout: RequestTimeout) -> Task:
    """``tasks.wait`` over the stream: ``on_progress`` on each change, the whole task last."""
    notified: tuple[object, object] | None = None
    async for update in tasks.stream(task_id, timeout=timeout, poll_interval=poll_interval,
                                     retries=retries, request_timeout=request_timeout):
        if update.kind == "task_event" or (
                update.kind == "progress" and update.task.finished and not update.polled):
            continue  # the end follows: the last call gets the whole task
        task = update.task
        if update.kind == "end" and not update.polled:
            task = await tasks.get(task_id, retries=retries, request_timeout=request_timeout)
        if (task.status, task.progress) != notified:
            notified = (task.status, task.progress)
            await notify_async(on_progress, task)
        if update.kind == "end":
            return finished(task)
    raise AssertionError("a task stream ends with its end")  # pragma: no cover


async def poll_until_finished(tasks: AsyncTasks, task_id: str, timeout: float | None,
                              poll_interval: float, on_progress: ProgressCallback | None,
                              retries: Retries, request_timeout: RequestTimeout) -> Task:
    """``tasks.wait(stream=False)``: ``GET /tasks/<id>`` until it is finished."""
    poller = Poller(timeout, poll_interval)
    while True:
        task = await tasks.get(task_id, retries=retries, request_timeout=request_timeout)
        if poller.observe(task):
            await notify_async(on_progress, task)
        if task.finished:
            return finished(task)
        delay = poller.next_delay()
        if delay is None:
            raise WaitTimeoutError(task, timeout or 0.0)
        await sleep_async(delay)
