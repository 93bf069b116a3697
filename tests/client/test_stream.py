"""``tasks.stream(id)`` against a scripted server: the SSE format, reconnection with
``Last-Event-ID``, and the polling fallback where the stream is refused or buffered.

The live stream (a real task, through ``end``) is in ``test_stream_live``."""

from __future__ import annotations

import asyncio
import io
import json
from contextlib import redirect_stderr
from urllib.parse import urlsplit

import pytest

from hark_client import AsyncClient, Client, TaskFailedError, WaitTimeoutError
from hark_client._sse import SSEDecoder
from tests.client.fakeserver import FakeServer, Reply

RUNNING = {"id": "t-1", "status": "running", "progress": 40}
DONE = {"id": "t-1", "endpoint": "/analyze", "status": "completed", "progress": 100,
        "result": {"text": "hi", "segments": []}}


def sse(event: str, data: dict, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def trail(event_id: int, kind: str) -> bytes:
    return sse("task_event", {"type": kind, "at": "2026-12-02T10:00:00+00:00",
                              "details": None}, event_id)


def progress(status: str, percent: int, event: str = "progress") -> bytes:
    return sse(event, {"status": status, "progress": percent, "error": None})


def paths(server: FakeServer) -> list[str]:
    return [urlsplit(r.path).path for r in server.requests]


def test_the_decoder_follows_the_standard_whatever_the_chunking():
    raw = ("\ufeffretry: 1500\r\n: a comment\r\n\r\nid: 7\r\nevent: task_event\r\n"
           "data: {\"a\":\r\ndata:1}\r\n\r\nevent: progress\ndata: é\n\ndata\rid\r\r"
           "data: tail without a blank line").encode()
    whole = SSEDecoder().feed(raw)
    assert [(m.event, m.data, m.id, m.last_event_id) for m in whole] == [
        ("task_event", '{"a":\n1}', "7", "7"), ("progress", "é", None, "7"),
        ("message", "", "", "")]
    for size in (1, 2, 3, 5):  # CRLF, multi-byte UTF-8 and fields split between chunks
        decoder = SSEDecoder()
        pieces = [decoder.feed(raw[i:i + size]) for i in range(0, len(raw), size)]
        assert [m for piece in pieces for m in piece] == whole, size
        assert decoder.retry == 1500


def test_a_cut_stream_resumes_with_last_event_id_and_delivers_nothing_twice():
    first = [b"retry: 10\n\n", trail(4, "created"), trail(5, "started"),
             progress("running", 40), b"id: 6\nevent: task_ev"]  # cut inside a message
    second = [b"retry: 10\n\n", trail(5, "started"), progress("running", 40),  # replayed
              trail(6, "progress"), progress("running", 80), trail(7, "completed"),
              progress("completed", 100), progress("completed", 100, "end")]
    with FakeServer(Reply(stream=first, cut=True), Reply(stream=second)) as server, \
            Client(server.url, "k") as client:
        updates = list(client.tasks.stream("t-1", timeout=30))
    assert [(u.kind, u.id or u.status) for u in updates] == [
        ("task_event", "4"), ("task_event", "5"), ("progress", "running"),
        ("task_event", "6"), ("progress", "running"), ("task_event", "7"),
        ("progress", "completed"), ("end", "completed")]
    assert [u.event.type for u in updates if u.kind == "task_event"] == \
        ["created", "started", "progress", "completed"]
    assert [u.progress for u in updates if u.kind == "progress"] == [40, 80, 100]
    assert not any(u.polled for u in updates) and updates[-1].task.id == "t-1"
    one, two = server.requests
    assert paths(server) == ["/tasks/t-1/stream"] * 2
    assert one.headers["accept"] == "text/event-stream" and "last-event-id" not in one.headers
    assert two.headers["last-event-id"] == "5"  # the cut message's id 6 was never complete
    assert two.headers["x-api-key"] == "k"


def test_the_async_client_resumes_too():
    first = [b"retry: 10\n\n", trail(1, "created"), progress("running", 10)]
    second = [trail(1, "created"), trail(2, "completed"), progress("completed", 100, "end")]

    async def scenario(url: str) -> list:
        async with AsyncClient(url, "k") as client:
            return [(u.kind, u.id) async for u in client.tasks.stream("t-1", timeout=30)]

    with FakeServer(Reply(stream=first, cut=True), Reply(stream=second)) as server:
        seen = asyncio.run(scenario(server.url))
    assert seen == [("task_event", "1"), ("progress", None), ("task_event", "2"),
                    ("end", None)]
    assert server.requests[1].headers["last-event-id"] == "1"


@pytest.mark.parametrize("refusal", [
    Reply(404, {"error": "not_found", "message": "no such route"}),
    Reply(405, {"error": "method_not_allowed", "message": "proxy"}),
    Reply(429, {"error": "too_many_streams", "message": "poll"}, {"retry-after": "5"}),
    Reply(200, b"<html>login</html>", {"content-type": "text/html"}),
], ids=["404", "405", "429", "html"])
def test_no_event_stream_means_polling_to_the_final_status(refusal):
    replies = [refusal, Reply(200, RUNNING), Reply(200, DONE)]
    with FakeServer(*replies) as server, Client(server.url, "k", retries=0) as client:
        updates = list(client.tasks.stream("t-1", timeout=30, poll_interval=0.01))
        assert client.tasks.wait("t-1", timeout=30, poll_interval=0.01).succeeded
    assert [(u.kind, u.status, u.polled) for u in updates] == [
        ("progress", "running", True), ("progress", "completed", True),
        ("end", "completed", True)]
    assert updates[-1].task.transcript.text == "hi"  # polled: the whole task
    assert paths(server)[:3] == ["/tasks/t-1/stream", "/tasks/t-1", "/tasks/t-1"]


def test_a_buffering_proxy_means_polling():
    """The headers come through but the proxy holds the body: after ``idle_timeout``
    without a byte the client polls instead."""
    replies = [Reply(stream=[], hold=True), Reply(200, RUNNING), Reply(200, DONE)]
    with FakeServer(*replies) as server, Client(server.url, "k") as client:
        updates = [(u.kind, u.status, u.polled) for u in
                   client.tasks.stream("t-1", idle_timeout=0.3, poll_interval=0.01)]
    assert updates == [("progress", "running", True), ("progress", "completed", True),
                       ("end", "completed", True)]
    assert paths(server) == ["/tasks/t-1/stream", "/tasks/t-1", "/tasks/t-1"]


def test_wait_follows_the_stream_and_fetches_the_finished_task():
    stream = [b"retry: 10\n\n", trail(1, "started"), progress("running", 0),
              progress("running", 50), progress("completed", 100),
              progress("completed", 100, "end")]
    seen = []
    with FakeServer(Reply(stream=stream), Reply(200, DONE)) as server, \
            Client(server.url, "k") as client:
        task = client.tasks.wait("t-1", timeout=30, on_progress=seen.append)
    assert task.transcript.text == "hi"
    assert [(t.status, t.progress) for t in seen] == [("running", 0), ("running", 50),
                                                      ("completed", 100)]
    assert seen[-1].result is not None  # the last call gets the whole task
    assert paths(server) == ["/tasks/t-1/stream", "/tasks/t-1"]


def test_wait_raises_for_a_failed_task_and_on_its_deadline():
    failed = {"status": "failed", "progress": 0, "error": {"type": "MediaError",
                                                          "message": "not audio"}}
    stream = [sse("progress", failed), sse("end", failed)]
    full = {"id": "t-1", **failed}
    with FakeServer(Reply(stream=stream), Reply(200, full),
                    Reply(stream=[progress("running", 10)], hold=True)) as server, \
            Client(server.url, "k") as client:
        with pytest.raises(TaskFailedError) as caught:
            client.tasks.wait("t-1", timeout=30)
        assert caught.value.task.error["type"] == "MediaError"
        with pytest.raises(WaitTimeoutError) as late:
            client.tasks.wait("t-1", timeout=0.5)
    assert (late.value.task.status, late.value.task.progress) == ("running", 10)
    assert len(server.requests) == 3  # the deadline came while streaming: no polling


def test_the_cli_progress_bar_follows_the_stream(tmp_path, capsys):
    from hark_client.cli import main

    media = tmp_path / "talk.wav"
    media.write_bytes(b"RIFF....WAVE")
    stream = [trail(1, "started"), progress("running", 0), progress("running", 50),
              progress("completed", 100), progress("completed", 100, "end")]
    replies = [Reply(202, {"task_id": "t-1", "status": "assigned"}), Reply(stream=stream),
               Reply(200, DONE), Reply(200, b"hi\n", {"content-type": "text/plain"})]
    err = io.StringIO()
    with FakeServer(*replies) as server, redirect_stderr(err):
        assert main(["--url", server.url, "--api-key", "k", "analyze", str(media),
                     "--wait"]) == 0
    assert capsys.readouterr().out == "hi\n"
    lines = err.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["running 0%", "running 50%",
                                                      "completed 100%"]
    assert lines[-1].endswith("task t-1")
    assert paths(server) == ["/analyze", "/tasks/t-1/stream", "/tasks/t-1",
                             "/tasks/t-1/transcript"]
