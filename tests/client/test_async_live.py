"""The AsyncClient against the real platform: the same flows, awaited (plain asyncio.run)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from hark_client import (
    AsyncClient,
    AuthenticationError,
    NotFoundError,
    Task,
    TaskFailedError,
    WaitTimeoutError,
)

WAIT = 30  # seconds: a broken platform fails the test instead of hanging it


def test_async_flows(api_url, api_key):
    async def scenario() -> None:
        async with AsyncClient(api_url, api_key) as hark:
            assert (await hark.health()).ok

            done = await hark.diagnostics_sleep(0.1)
            assert done.succeeded and done.result["slept"] == 0.1

            seen: list[Task] = []

            async def record(task: Task) -> None:  # coroutine callbacks are awaited
                seen.append(task)

            submitted = await hark.diagnostics_sleep(1.5, defer=True)
            finished = await hark.tasks.wait(submitted.id, poll_interval=0.1,
                                             on_progress=record, timeout=WAIT)
            assert finished.succeeded
            progress = [t.progress for t in seen]
            assert progress == sorted(progress) and progress[-1] == 100 and len(seen) >= 3

            listed = [t.id async for t in hark.tasks.list(per_page=1)]
            assert listed == [submitted.id, done.id]
            assert (await hark.tasks.count()).total == 2

            with pytest.raises(TaskFailedError):
                await hark.diagnostics_sleep(0, fail=True, wait=True, timeout=WAIT)
            slow = await hark.diagnostics_sleep(10, defer=True)
            with pytest.raises(WaitTimeoutError):
                await hark.tasks.wait(slow.id, timeout=0.3, poll_interval=0.1)
            assert (await hark.tasks.delete(slow.id)).id == slow.id
            with pytest.raises(NotFoundError):
                await hark.tasks.get(str(uuid.uuid4()))

            # Two waits in flight at once on one client (the worker runs two tasks).
            both = await asyncio.gather(hark.diagnostics_sleep(0.3, defer=True, wait=True,
                                                              timeout=WAIT),
                                        hark.diagnostics_sleep(0.3, defer=True, wait=True,
                                                              timeout=WAIT))
            assert all(t.succeeded for t in both) and both[0].id != both[1].id

        async with AsyncClient(api_url, "wrong") as stranger:
            with pytest.raises(AuthenticationError):
                await stranger.tasks.count()

    asyncio.run(scenario())
