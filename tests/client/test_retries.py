"""Retries and error mapping, against a scripted loopback server that fails on demand."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from hark_client import (
    APIConnectionError,
    AsyncClient,
    Client,
    HarkError,
    NotFoundError,
    RateLimitError,
    RetryConfig,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
)
from tests.client.fakeserver import FakeServer, Reply
from tests.support import free_port

FAST = RetryConfig(max_retries=2, backoff_base=0.01, jitter=0)
COUNTS = {"created": 0, "assigned": 0, "completed": 3, "running": 0, "failed": 0,
          "not_finished": 0, "total": 3}
UNAVAILABLE = Reply(503, {"error": "broker_unavailable", "message": "retry shortly"})


def test_retries_503_then_succeeds():
    with FakeServer(UNAVAILABLE, UNAVAILABLE, Reply(200, COUNTS)) as server, \
            Client(server.url, "k", retries=FAST) as client:
        counts = client.tasks.count()
    assert counts.total == 3 and counts.completed == 3
    assert len(server.requests) == 3
    assert all(r.headers["x-api-key"] == "k" for r in server.requests)


def test_429_waits_retry_after_then_succeeds():
    limited = Reply(429, {"error": "rate_limited", "message": "slow down"},
                    {"Retry-After": "0"})
    # Retry-After wins over the (long) backoff, so this is quick.
    slow_backoff = RetryConfig(max_retries=3, backoff_base=30, jitter=0)
    with FakeServer(limited, limited, Reply(200, COUNTS)) as server, \
            Client(server.url, "k", retries=slow_backoff) as client:
        started = time.monotonic()
        assert client.tasks.count().total == 3
    assert len(server.requests) == 3
    assert time.monotonic() - started < 5


def test_gives_up_after_max_retries_with_the_last_error():
    unavailable = Reply(503, UNAVAILABLE.body, {"Retry-After": "0"})
    with FakeServer(unavailable) as server, Client(server.url, "k", retries=FAST) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            client.tasks.count()
    assert len(server.requests) == 3  # one try and two retries
    error = caught.value
    assert isinstance(error, ServerError) and isinstance(error, HarkError)
    assert (error.status_code, error.code, error.retry_after) == (503, "broker_unavailable", 0)
    assert error.body == UNAVAILABLE.body and error.headers["retry-after"] == "0"


def test_never_retries_other_4xx():
    bad = Reply(400, {"error": "validation_error", "message": "invalid fields: seconds",
                      "details": {"seconds": ["Not a valid number."]}})
    with FakeServer(bad, Reply(200, COUNTS)) as server, \
            Client(server.url, "k", retries=FAST) as client:
        with pytest.raises(ValidationError) as caught:
            client.tasks.count()
    assert len(server.requests) == 1
    assert caught.value.status_code == 400 and caught.value.details == bad.body["details"]
    assert "invalid fields" in str(caught.value)


def test_per_call_retries_override_the_client():
    with FakeServer(UNAVAILABLE, UNAVAILABLE, Reply(200, COUNTS)) as server, \
            Client(server.url, "k", retries=FAST) as client:
        with pytest.raises(ServiceUnavailableError):
            client.tasks.count(retries=0)
        assert len(server.requests) == 1
        assert client.tasks.count(retries=RetryConfig(max_retries=5, backoff_base=0)).total == 3


def test_retry_after_longer_than_allowed_is_not_waited_for():
    limited = Reply(429, {"error": "rate_limited", "message": "later"}, {"Retry-After": "3600"})
    with FakeServer(limited) as server, Client(server.url, "k", retries=FAST) as client:
        with pytest.raises(RateLimitError) as caught:
            client.tasks.count()
    assert len(server.requests) == 1 and caught.value.retry_after == 3600


def test_non_json_error_body_still_maps_to_its_class():
    with FakeServer(Reply(404, b"<html>nope</html>", {"content-type": "text/html"})) as server, \
            Client(server.url, "k") as client:
        with pytest.raises(NotFoundError) as caught:
            client.tasks.get("abc")
    assert caught.value.body == "<html>nope</html>" and caught.value.code is None


def test_connection_refused_is_retried_then_raised():
    url = f"http://127.0.0.1:{free_port()}"
    attempts = []
    transport = httpx.HTTPTransport()

    class Counting(httpx.BaseTransport):
        def handle_request(self, request):
            attempts.append(request.url)
            return transport.handle_request(request)

    with Client(url, "k", retries=FAST, http_client=httpx.Client(transport=Counting())) as c:
        with pytest.raises(APIConnectionError) as caught:
            c.health()
    assert len(attempts) == 3
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.status_code is None and url in str(caught.value)


def test_retried_upload_sends_the_whole_file_each_time(tmp_path):
    accepted = Reply(202, {"task_id": "t1", "status": "assigned"})
    media = tmp_path / "talk.wav"
    media.write_bytes(b"RIFF" + b"x" * 5000)
    with FakeServer(UNAVAILABLE, accepted, UNAVAILABLE, accepted) as server, \
            Client(server.url, "k", retries=FAST) as client:
        task = client.analyze(media, language="en")
        with media.open("rb") as handle:
            handle.read(4)  # a file object is sent from where it was when passed in
            again = client.analyze(handle, language="en")
    assert (task.id, task.status, task.endpoint) == ("t1", "assigned", "/analyze")
    assert again.id == "t1"
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 4
    assert all(b"RIFF" + b"x" * 5000 + b"\r\n--" in body for body in bodies)
    assert all(b'filename="talk.wav"' in body for body in bodies)
    assert b'name="language"\r\n\r\nen' in bodies[1]


def test_degraded_health_is_an_answer_not_an_error():
    degraded = Reply(503, {"status": "degraded", "database": {"ok": True},
                           "broker": {"ok": False, "error": "ConnectionError"}},
                     {"Retry-After": "0"})
    with FakeServer(degraded) as server, Client(server.url, retries=FAST) as client:
        health = client.health()
    assert not health.ok and health.broker["ok"] is False
    assert len(server.requests) == 1


def test_async_client_retries_the_same_way():
    async def scenario(url: str) -> int:
        async with AsyncClient(url, "k", retries=FAST) as client:
            return (await client.tasks.count()).total

    with FakeServer(UNAVAILABLE, UNAVAILABLE, Reply(200, COUNTS)) as server:
        assert asyncio.run(scenario(server.url)) == 3
        assert len(server.requests) == 3
    with FakeServer(Reply(409, {"error": "conflict", "message": "no"})) as server:
        with pytest.raises(HarkError) as caught:
            asyncio.run(scenario(server.url))
        assert caught.value.status_code == 409 and len(server.requests) == 1


def test_retry_config_backoff_grows_and_is_capped():
    config = RetryConfig(max_retries=10, backoff_base=0.5, backoff_max=3, jitter=0)
    assert [config.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
    jittery = RetryConfig(backoff_base=1, jitter=0.25)
    assert all(0.75 <= jittery.backoff(1) <= 1.25 for _ in range(50))
    with pytest.raises(ValueError):
        RetryConfig(max_retries=-1)
