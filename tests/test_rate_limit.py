"""RATE_LIMIT_PER_MINUTE: a token bucket per API key in Redis, 429 when empty."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import replace

import pytest
import redis

from app import create_app
from app.ratelimit import Limit, RedisBucket
from core.config import Settings
from tests.support import free_port


@pytest.fixture()
def limited(settings):
    """Build apps with rate limiting on (``RATE_LIMIT_*`` overrides); close them after."""
    apps = []

    def make(per_minute: int = 1, burst: int = 3, **overrides):
        application = create_app(replace(settings, rate_limit_per_minute=per_minute,
                                         rate_limit_burst=burst, **overrides))
        apps.append(application)
        return application

    yield make
    for application in apps:
        limiter = application.extensions["hark_ratelimit"]
        if isinstance(limiter, RedisBucket):
            limiter.close()
        application.extensions["hark"]["waiter"].close()
        application.extensions["hark"]["db"].dispose()


@pytest.fixture()
def bucket(settings):
    """Make a limiter on the test session's Redis namespace."""
    made: list[RedisBucket] = []

    def make(limit: Limit):
        made.append(RedisBucket(settings.broker_url, limit, settings.broker_key_prefix))
        return made[-1]

    yield make
    for b in made:
        b.close()


def key(raw: str) -> dict[str, str]:
    return {"x-api-key": raw}


def test_burst_then_429_with_retry_after(limited, api_key):
    client = limited(per_minute=1, burst=3).test_client()
    for remaining in ("2", "1", "0"):
        ok = client.get("/me", headers=key(api_key))
        assert ok.status_code == 200
        assert ok.headers["X-RateLimit-Limit"] == "3"
        assert ok.headers["X-RateLimit-Remaining"] == remaining
    refused = client.get("/me", headers=key(api_key))
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 55 <= wait <= 60  # one token a minute
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.get_json() == {
        "error": "rate_limited", "details": {"retry_after": wait},
        "message": f"too many requests for this API key; retry in {wait} s"}
    # Every authenticated method is limited, not only GET.
    post = client.post("/diagnostics/sleep", json={"seconds": 0}, headers=key(api_key))
    assert post.status_code == 429


def test_keys_have_separate_buckets_admin_included(limited, api_key, other_key, admin_key):
    client = limited(per_minute=1, burst=1).test_client()
    assert client.get("/me", headers=key(api_key)).status_code == 200
    assert client.get("/me", headers=key(api_key)).status_code == 429
    bearer = {"Authorization": f"Bearer {other_key}"}
    assert client.get("/me", headers=bearer).status_code == 200
    assert client.get("/me", headers=key(admin_key)).status_code == 200
    assert client.get("/me", headers=key(admin_key)).status_code == 429


def test_public_and_unauthenticated_requests_are_not_limited(limited, api_key):
    client = limited(per_minute=1, burst=1).test_client()
    assert client.get("/me", headers=key(api_key)).status_code == 200
    assert client.get("/me", headers=key(api_key)).status_code == 429
    for _ in range(3):
        health = client.get("/health", headers=key(api_key))
        assert health.status_code == 200 and "X-RateLimit-Limit" not in health.headers
        assert client.get("/openapi.json", headers=key(api_key)).status_code == 200
        assert client.get("/me", headers=key("hk_wrong")).status_code == 401


def test_waiting_retry_after_is_enough(limited, api_key):
    client = limited(per_minute=60, burst=1).test_client()
    assert client.get("/me", headers=key(api_key)).status_code == 200
    refused = client.get("/me", headers=key(api_key))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    time.sleep(int(refused.headers["Retry-After"]))
    assert client.get("/me", headers=key(api_key)).status_code == 200


def test_bucket_refills_at_the_configured_rate(bucket):
    limiter, kid, t = bucket(Limit(per_minute=60, burst=3)), uuid.uuid4().hex, 1_000_000.0
    assert [limiter.take(kid, now=t) for _ in range(3)] == [
        (True, 2, 0.0), (True, 1, 0.0), (True, 0, 0.0)]
    assert limiter.take(kid, now=t) == (False, 0, 1.0)
    assert limiter.take(kid, now=t + 0.5) == (False, 0, 0.5)
    assert limiter.take(kid, now=t + 1.0) == (True, 0, 0.0)
    # A long idle time refills the bucket to the burst, no further.
    assert limiter.take(kid, now=t + 3600) == (True, 2, 0.0)


def test_concurrent_requests_never_overspend(bucket):
    limiter, kid = bucket(Limit(per_minute=1, burst=20)), uuid.uuid4().hex
    results: list[bool] = []

    def hammer():
        for _ in range(10):
            results.append(limiter.take(kid).allowed)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 80 and results.count(True) == 20


def test_redis_bucket_is_namespaced_and_expires(settings):
    limiter = RedisBucket(settings.broker_url, Limit(per_minute=60, burst=3),
                          settings.broker_key_prefix)
    kid = uuid.uuid4().hex
    try:
        limiter.take(kid)
        client = redis.Redis.from_url(settings.broker_url)
        name = f"{settings.broker_key_prefix}ratelimit:{kid}"
        assert limiter.key(kid) == name
        # One token spent at one a second: full again (same as absent) in 1 s, plus 1 s.
        assert 0 < client.pttl(name) <= 2000
        client.close()
    finally:
        limiter.close()


def test_redis_down_fails_open(limited, api_key, caplog):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RedisBucket(closed, Limit(per_minute=1, burst=1))
    with caplog.at_level(logging.WARNING, logger="app.ratelimit"):
        started = time.perf_counter()
        assert all(limiter.take("k").allowed for _ in range(5))
        assert time.perf_counter() - started < 1.0
    # One warning, then Redis is left alone for a while instead of tried per request.
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1
    limiter.close()
    # Through the API: the broker URL (hence the limiter) points at a closed port.
    client = limited(per_minute=1, burst=1, broker_url=closed).test_client()
    for _ in range(3):
        assert client.get("/me", headers=key(api_key)).status_code == 200


def test_a_non_redis_broker_is_refused_at_startup(settings):
    with pytest.raises(ValueError, match="needs a Redis broker"):
        create_app(replace(settings, rate_limit_per_minute=1,
                           broker_url="amqp://guest@127.0.0.1:5672//"))


def test_off_by_default(app, client, auth, monkeypatch):
    monkeypatch.delenv("RATE_LIMIT_PER_MINUTE", raising=False)
    assert Settings.from_env().rate_limit_per_minute == 0
    assert app.extensions["hark_ratelimit"] is None
    assert "_rate_limit" not in {f.__name__ for f in app.before_request_funcs[None]}
    for _ in range(30):
        response = client.get("/me", headers=auth)
        assert response.status_code == 200 and "X-RateLimit-Limit" not in response.headers


def test_burst_defaults_to_a_minute_of_requests(settings):
    assert Limit.from_settings(replace(settings, rate_limit_per_minute=120)) == Limit(120, 120)
    assert Limit.from_settings(replace(settings, rate_limit_per_minute=120,
                                       rate_limit_burst=5)) == Limit(120, 5)


def test_429_is_documented_for_authenticated_routes(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "429" in paths["/me"]["get"]["responses"]
    assert "429" not in paths["/health"]["get"]["responses"]
