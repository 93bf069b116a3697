"""Invalid keys are limited per client address before any key lookup
(``AUTH_FAILURES_PER_MINUTE``), and a key found invalid is not looked up again for
``KEY_CACHE_SECONDS``."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
import redis
from sqlalchemy import event

from app import create_app
from app.auth_limit import LocalBucket, make_auth_limiter
from app.ratelimit import Limit, RedisBucket


@pytest.fixture()
def make_app(settings):
    """Apps with a broker namespace of their own per test (fresh buckets), closed after;
    ``lookups`` lists every key lookup their database runs."""
    apps, lookups, prefix = [], [], f"hark-authlimit-{uuid.uuid4().hex[:8]}:"

    def count(_conn, _cursor, statement, *_args):
        if statement.startswith("SELECT") and "FROM api_keys" in statement:
            lookups.append(statement)

    def make(**overrides):
        options = {"broker_key_prefix": prefix, "api_bootstrap_key": None, **overrides}
        application = create_app(replace(settings, **options))
        event.listen(application.extensions["hark"]["db"].engine, "before_cursor_execute",
                     count)
        apps.append(application)
        return application

    make.lookups = lookups
    yield make
    for application in apps:
        limiter = application.extensions["hark_auth_limit"]
        if limiter is not None:
            limiter.close()
        application.extensions["hark"]["waiter"].close()
        application.extensions["hark"]["db"].dispose()
    client = redis.Redis.from_url(settings.broker_url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def me(client, key: str, address: str = "203.0.113.7", **headers):
    return client.get("/me", headers={"x-api-key": key, **headers},
                      environ_base={"REMOTE_ADDR": address})


def invalid() -> str:
    return f"hk_invalid-{uuid.uuid4().hex}"


def test_invalid_keys_get_429_without_a_lookup_once_the_allowance_is_spent(make_app,
                                                                            api_key):
    client = make_app(auth_failures_per_minute=3, key_cache_seconds=0).test_client()
    assert [me(client, invalid()).status_code for _ in range(3)] == [401, 401, 401]
    assert len(make_app.lookups) == 3
    for _ in range(20):
        refused = me(client, invalid())
        assert refused.status_code == 429
    assert len(make_app.lookups) == 3  # no lookup for any of them
    body = refused.get_json()
    assert body["error"] == "too_many_failed_authentications"
    assert 1 <= int(refused.headers["Retry-After"]) <= 20  # a token back in 20 s
    assert body["details"]["retry_after"] == int(refused.headers["Retry-After"])
    # Another address is not affected; from this one an uncached valid key waits too.
    assert me(client, api_key, address="198.51.100.1").status_code == 200
    assert me(client, api_key).status_code == 429


def test_a_cached_valid_key_passes_from_a_limited_address(make_app, api_key):
    client = make_app(auth_failures_per_minute=2, key_cache_seconds=60).test_client()
    assert me(client, api_key).status_code == 200  # looked up once, then cached
    assert [me(client, invalid()).status_code for _ in range(3)] == [401, 401, 429]
    assert me(client, api_key).status_code == 200


def test_the_allowance_is_shared_by_api_processes(make_app):
    """Buckets live in the Redis broker: failures on one process count on another."""
    first = make_app(auth_failures_per_minute=2, key_cache_seconds=0).test_client()
    second = make_app(auth_failures_per_minute=2, key_cache_seconds=0).test_client()
    assert me(first, invalid()).status_code == 401
    assert me(second, invalid()).status_code == 401
    assert me(first, invalid()).status_code == 429
    assert me(second, invalid()).status_code == 429
    assert len(make_app.lookups) == 2


def test_a_key_found_invalid_is_not_looked_up_again(make_app):
    client = make_app(auth_failures_per_minute=0, key_cache_seconds=60).test_client()
    raw = invalid()
    assert [me(client, raw).status_code for _ in range(5)] == [401] * 5
    assert len(make_app.lookups) == 1
    assert me(client, invalid()).status_code == 401
    assert len(make_app.lookups) == 2


def test_repeating_a_refused_key_spends_the_allowance(make_app):
    client = make_app(auth_failures_per_minute=2, key_cache_seconds=60).test_client()
    raw = invalid()
    assert [me(client, raw).status_code for _ in range(3)] == [401, 401, 429]
    assert len(make_app.lookups) == 1


def test_trusted_proxies_limit_each_forwarded_client(make_app):
    client = make_app(auth_failures_per_minute=1, key_cache_seconds=0,
                      trusted_proxies=1).test_client()
    a, b = {"X-Forwarded-For": "192.0.2.1"}, {"X-Forwarded-For": "192.0.2.2"}
    assert me(client, invalid(), **a).status_code == 401
    assert me(client, invalid(), **a).status_code == 429
    assert me(client, invalid(), **b).status_code == 401  # same proxy, another client


def test_off_and_local_buckets(settings):
    assert make_auth_limiter(replace(settings, auth_failures_per_minute=0)) is None
    limiter = make_auth_limiter(replace(settings, auth_failures_per_minute=5))
    assert isinstance(limiter, RedisBucket) and limiter.limit == Limit(5, 5)
    limiter.close()
    local = make_auth_limiter(replace(settings, auth_failures_per_minute=60,
                                      broker_url="amqp://guest@127.0.0.1//"))
    assert isinstance(local, LocalBucket)
    # 60 a minute: one a second; a peek (cost 0) takes nothing.
    local = LocalBucket(Limit(60, 1))
    assert local.take("c", now=0.0, cost=0).allowed
    assert local.take("c", now=0.0).allowed
    assert local.take("c", now=0.0, cost=0) == (False, 0, 1.0)
    assert not local.take("c", now=0.5).allowed
    assert local.take("c", now=1.0).allowed
