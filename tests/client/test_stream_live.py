"""``tasks.stream(id)`` against the real platform: a task followed through ``end``, and a
real proxy that cuts the stream mid-way (the client resumes with ``Last-Event-ID``)."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from urllib.parse import urlsplit

from hark_client import AsyncClient, Client, TaskStatus

WAIT = 60


def test_a_real_task_streams_through_end(hark):
    task = hark.diagnostics_sleep(1.0, defer=True)
    updates = list(hark.tasks.stream(task.id, timeout=WAIT))
    assert updates[-1].kind == "end" and updates[-1].status == TaskStatus.COMPLETED
    assert not any(u.polled for u in updates)
    trail = [u.event.type for u in updates if u.kind == "task_event"]
    assert trail == [e.type for e in hark.tasks.events(task.id)]
    assert {"created", "started", "completed"} <= set(trail), trail
    percents = [u.progress for u in updates if u.kind == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100
    ids = [int(u.id) for u in updates if u.kind == "task_event"]
    assert ids == sorted(set(ids))


def test_async_wait_follows_the_stream(api_url, api_key):
    async def scenario() -> tuple:
        async with AsyncClient(api_url, api_key) as hark:
            task = await hark.diagnostics_sleep(1.0, defer=True)
            seen = []
            done = await hark.tasks.wait(task.id, timeout=WAIT, on_progress=seen.append)
            return done, seen

    done, seen = asyncio.run(scenario())
    assert done.succeeded and done.result is not None
    assert seen[-1].status == "completed" and seen[-1].result == done.result
    assert all(t.id == done.id for t in seen)


class CuttingProxy:
    """TCP proxy to the API that drops its first connection right after the first
    complete ``task_event`` message it passed on, and records what the client sent."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent: list[bytearray] = []  # per connection: the client's bytes
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sent.append(bytearray())
            cut_this = len(self.sent) == 1
            threading.Thread(target=self._pump, args=(client, server, self.sent[-1]),
                             daemon=True).start()
            threading.Thread(target=self._pump_back, args=(server, client, cut_this),
                             daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, log: bytearray) -> None:
        try:
            while chunk := source.recv(65536):
                log.extend(chunk)
                target.sendall(chunk)
        except OSError:
            pass

    def _pump_back(self, source: socket.socket, target: socket.socket, cut: bool) -> None:
        seen = bytearray()
        try:
            while chunk := source.recv(65536):
                if cut:
                    seen.extend(chunk)
                    start = seen.find(b"event: task_event")
                    end = seen.find(b"\n\n", start) if start >= 0 else -1
                    if end >= 0:  # pass on up to the message's end, then drop it all
                        target.sendall(chunk[:len(chunk) - (len(seen) - end - 2)])
                        self.cut.set()
                        break
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_proxy_cutting_the_stream_is_resumed_without_duplicates(api_url, api_key, hark):
    task = hark.diagnostics_sleep(2.0, defer=True)
    proxy = CuttingProxy(api_url)
    try:
        with Client(proxy.url, api_key) as through:
            updates = list(through.tasks.stream(task.id, timeout=WAIT))
    finally:
        proxy.close()
    assert proxy.cut.is_set() and len(proxy.sent) >= 2
    first_id = next(u.id for u in updates if u.kind == "task_event")
    resumed = re.search(rb"(?im)^last-event-id: *(\d+)\r$", bytes(proxy.sent[1]))
    assert "last-event-id" not in bytes(proxy.sent[0]).decode().lower()
    assert resumed and resumed.group(1).decode() == first_id
    ids = [int(u.id) for u in updates if u.kind == "task_event"]
    assert ids == sorted(set(ids))  # nothing twice
    trail = [u.event.type for u in updates if u.kind == "task_event"]
    assert trail == [e.type for e in hark.tasks.events(task.id)]  # nothing missed
    states = [(u.status, u.progress) for u in updates if u.kind == "progress"]
    assert len(states) == len(set(states))
    assert updates[-1].kind == "end" and updates[-1].status == "completed"
