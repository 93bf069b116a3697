"""The client surface against a scripted server: server-side waits, idempotency keys,
NOT_GIVEN, per-call request timeouts, debug logging, paging, and the newer endpoints."""

from __future__ import annotations

import asyncio
import io
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from hark_client import (
    NOT_GIVEN,
    APITimeoutError,
    AsyncClient,
    Client,
    RetryConfig,
    UnsupportedMediaTypeError,
    WaitTimeoutError,
)
from tests.client.fakeserver import FakeServer, Reply

FAST = RetryConfig(max_retries=2, backoff_base=0.01, jitter=0)
ACCEPTED = Reply(202, {"task_id": "t-1", "status": "assigned"})
DONE = {"id": "t-1", "task_id": "t-1", "status": "completed", "progress": 100,
        "result": {"text": "hi", "segments": []}}
BAD_GATEWAY = Reply(502, {"error": "bad_gateway", "message": "proxy"})


def query(seen) -> dict[str, list[str]]:
    return parse_qs(urlsplit(seen.path).query)


def test_a_waited_submission_is_one_request_the_server_holds():
    with FakeServer(Reply(200, DONE)) as server, Client(server.url, "k") as client:
        task = client.analyze(b"RIFF", filename="a.wav", wait=True, timeout=45)
        forever = client.index(url="https://example.com/a.mp3", collection="c", wait=True)
    assert task.succeeded and task.transcript.text == "hi"
    first, second = server.requests
    assert query(first) == {"defer": ["false"], "timeout": ["45"]}
    assert query(second) == {"defer": ["false"], "timeout": ["300"]}  # the server's maximum
    assert forever.succeeded and len(server.requests) == 2  # no polling


def test_a_202_from_a_server_wait_falls_back_to_the_stream_then_polling():
    running = {**DONE, "status": "running", "progress": 50, "result": None}
    no_stream = Reply(404, {"error": "not_found", "message": "an older server"})
    replies = [ACCEPTED, no_stream, Reply(200, running), Reply(200, DONE)]
    with FakeServer(*replies) as server, Client(server.url, "k") as client:
        task = client.analyze(url="https://example.com/a.mp3", wait=True, timeout=30)
    assert task.succeeded
    calls = [(r.method, urlsplit(r.path).path) for r in server.requests]
    assert calls == [("POST", "/analyze"), ("GET", "/tasks/t-1/stream"),
                     ("GET", "/tasks/t-1"), ("GET", "/tasks/t-1")]


def test_on_progress_polls_from_a_deferred_submission():
    seen = []
    with FakeServer(ACCEPTED, Reply(200, DONE)) as server, Client(server.url, "k") as client:
        client.analyze(b"RIFF", wait=True, on_progress=seen.append)
    assert query(server.requests[0]) == {"defer": ["true"]}
    assert [t.status for t in seen] == ["completed"]


def test_one_idempotency_key_per_call_reused_on_its_retries():
    replies = [BAD_GATEWAY, ACCEPTED, BAD_GATEWAY, ACCEPTED, ACCEPTED]
    with FakeServer(*replies) as server, Client(server.url, "k", retries=FAST) as client:
        client.analyze(io.BytesIO(b"ID3data"), filename="a.mp3")
        client.diagnostics_sleep(0, defer=True)
        client.index(url="https://example.com/a.mp3", collection="c", idempotency_key="mine")
    keys = [r.headers.get("idempotency-key") for r in server.requests]
    assert len(keys) == 5 and keys[0] == keys[1] and keys[2] == keys[3]
    assert keys[0] != keys[2] and keys[0].startswith("hark-") and keys[4] == "mine"
    assert all(b"\r\n\r\nID3data\r\n" in r.body for r in server.requests[:2])  # sent whole


def test_async_client_reuses_its_key_too():
    async def scenario(url: str) -> None:
        async with AsyncClient(url, "k", retries=FAST) as client:
            await client.analyze(b"RIFF", filename="a.wav")

    with FakeServer(BAD_GATEWAY, ACCEPTED) as server:
        asyncio.run(scenario(server.url))
    first, second = (r.headers["idempotency-key"] for r in server.requests)
    assert first == second


def test_every_option_reaches_the_body():
    with FakeServer(ACCEPTED) as server, Client(server.url, "k") as client:
        client.analyze(url="https://example.com/a", filename="talk.mp3", queue="q1")
        client.index(url="https://example.com/a", collection="c", task="translate",
                     word_timestamps=True, model="tiny.en", language="en", queue="q2",
                     webhook="https://h.example.com", webhook_events=["task.failed"])
    assert server.requests[0].json() == {"media": {"url": "https://example.com/a",
                                                   "filename": "talk.mp3"}, "queue": "q1"}
    assert server.requests[1].json() == {
        "media": {"url": "https://example.com/a"}, "collection": "c", "model": "tiny.en",
        "language": "en", "task": "translate", "word_timestamps": True, "queue": "q2",
        "webhook": "https://h.example.com", "webhook_events": ["task.failed"]}


def test_not_given_leaves_a_field_alone_and_none_clears_it():
    collection = {"collection_id": "c", "name": "C"}
    hook = {"id": "w1", "url": "https://h.example.com"}
    replies = [Reply(200, collection), Reply(200, collection), Reply(200, hook)]
    with FakeServer(*replies) as server, Client(server.url, "k") as client:
        client.collections.update("c", description=None)
        client.collections.update("c", name="C", description=NOT_GIVEN)
        client.webhooks.update("w1", events=None, description=None)
        with pytest.raises(ValueError):
            client.collections.update("c")
    assert [r.json() for r in server.requests] == [
        {"description": None}, {"name": "C"}, {"events": None, "description": None}]
    assert repr(NOT_GIVEN) == "NOT_GIVEN" and not NOT_GIVEN


def test_request_timeout_is_per_request_and_apart_from_the_wait():
    slow = Reply(200, DONE, delay=1.0)
    with FakeServer(slow) as server, Client(server.url, "k", retries=0) as client:
        with pytest.raises(APITimeoutError):
            client.tasks.get("t-1", request_timeout=0.2)
        # A server-side wait stretches the read timeout past the wait itself.
        short = client.with_options(timeout=0.2)
        assert short.analyze(b"RIFF", wait=True, timeout=2).succeeded
        with pytest.raises(APITimeoutError):
            short.tasks.get("t-1")
        assert client.tasks.get("t-1", request_timeout=None).succeeded
    assert len(server.requests) == 4


def test_wait_deadline_is_not_the_request_timeout():
    running = {**DONE, "status": "running", "result": None}
    with FakeServer(Reply(200, running)) as server, Client(server.url, "k") as client:
        with pytest.raises(WaitTimeoutError):
            client.tasks.wait("t-1", timeout=0.3, poll_interval=0.1, request_timeout=5)
    assert len(server.requests) >= 2


def test_with_options_changes_retries_for_one_use():
    with FakeServer(BAD_GATEWAY, Reply(200, {"total": 0})) as server, \
            Client(server.url, "k", retries=FAST) as client:
        with pytest.raises(Exception, match="502"):
            client.with_options(retries=0).tasks.count()
        assert client.tasks.count().total == 0
    assert len(server.requests) == 2


def test_415_has_its_own_error():
    refused = Reply(415, {"error": "unsupported_media_type", "message": "send JSON"})
    with FakeServer(refused) as server, Client(server.url, "k") as client:
        with pytest.raises(UnsupportedMediaTypeError) as caught:
            client.webhooks.create("https://h.example.com")
    assert caught.value.status_code == 415 and caught.value.code == "unsupported_media_type"


def test_delivery_logs_page_themselves():
    def attempt(n: int) -> dict:
        return {"id": n, "delivery_id": f"d{n}", "attempt": 1}

    replies = [Reply(200, {"deliveries": [attempt(1), attempt(2)], "next_cursor": "Mg"}),
               Reply(200, {"deliveries": [attempt(3)], "next_cursor": None})]
    with FakeServer(*replies) as server, Client(server.url, "k") as client:
        log = list(client.webhooks.iter_deliveries("w1", per_page=2))
    assert [d.delivery_id for d in log] == ["d1", "d2", "d3"]
    assert [r.path for r in server.requests] == [
        "/webhooks/w1/deliveries?per_page=2&page=1",
        "/webhooks/w1/deliveries?per_page=2&cursor=Mg"]


def test_events_me_models_and_workers():
    replies = [Reply(200, {"events": [{"type": "created", "at": "2026-01-02T03:04:05+00:00",
                                       "details": None}]}),
               Reply(200, {"owner": "alice", "name": "ci", "admin": False,
                           "limits": {"max_request_mb": 100}}),
               Reply(200, {"models": ["base", "tiny.en"], "default": "base"}),
               Reply(200, {"workers": [{"id": "n1:42", "device": "cpu", "queues": ["cpu"],
                                        "last_seen": "2026-01-02T03:04:05+00:00"}]})]
    with FakeServer(*replies) as server, Client(server.url, "k") as client:
        [event] = client.tasks.events("t-1")
        me, models, [worker] = client.me(), client.models(), client.workers()
    assert event.type == "created" and event.at.year == 2026
    assert (me.owner, me.admin, me.limits["max_request_mb"]) == ("alice", False, 100)
    assert models.models == ["base", "tiny.en"] and models.default == "base"
    assert worker.id == "n1:42" and worker.queues == ["cpu"] and worker.last_seen.year == 2026
    assert [r.path for r in server.requests] == ["/tasks/t-1/events", "/me", "/models",
                                                 "/workers"]


def test_upload_progress_reports_every_byte():
    seen: list[tuple[int, int | None]] = []
    data = b"x" * 200_000
    with FakeServer(ACCEPTED) as server, Client(server.url, "k") as client:
        client.analyze(data, filename="a.wav", on_upload=lambda s, t: seen.append((s, t)))
    assert seen and seen[-1] == (len(data), len(data))
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    assert data in server.requests[0].body


@pytest.fixture()
def debug_log(monkeypatch, caplog):
    monkeypatch.setenv("HARK_LOG", "debug")
    logger = logging.getLogger("hark_client")
    yield caplog
    for handler in [h for h in logger.handlers if getattr(h, "_hark", False)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def test_hark_log_debug_logs_requests_without_secrets(debug_log):
    hook = {"id": "w1", "url": "https://h.example.com", "secret": "whsec_c2VjcmV0MTIz"}
    with FakeServer(Reply(201, hook)) as server, Client(server.url, "sk-live-4242") as client:
        assert client.webhooks.create("https://h.example.com").secret == hook["secret"]
    text = debug_log.text
    assert "request: POST" in text and "/webhooks" in text and "-> 201" in text
    assert "https://h.example.com" in text and "<redacted>" in text
    assert "sk-live-4242" not in text and "c2VjcmV0MTIz" not in text
    # The key reached the server all the same.
    assert server.requests[0].headers["x-api-key"] == "sk-live-4242"
