"""Collections, search and webhooks through the SDK against the real platform."""

from __future__ import annotations

import time

import pytest

from hark_client import (
    Client,
    Collection,
    ConflictError,
    NotFoundError,
    ValidationError,
    Webhook,
    verify_webhook,
)
from tests.client.fakeserver import FakeServer, Reply
from tests.support import start_worker

WAIT = 30


def wait_until(predicate, timeout: float = WAIT, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def events_worker(settings_env, log_dir, app):
    """A worker in the ``events`` role: it sends webhooks."""
    process = start_worker(settings_env, log_dir, name="client-events", WORKER_ROLE="events",
                           WORKER_CONCURRENCY="2")
    yield process
    process.stop()


def test_collection_lifecycle(hark, api_url, other_key):
    created = hark.collections.create("talks", "Conference talks", "keynotes")
    assert isinstance(created, Collection)
    assert (created.id, created.name, created.description) == ("talks", "Conference talks",
                                                               "keynotes")
    assert created.media_count == 0 and created.created_at is not None
    with pytest.raises(ConflictError):
        hark.collections.create("talks")
    hark.collections.create("b-side")  # name defaults to the id
    assert [c.id for c in hark.collections.list(per_page=1)] == ["b-side", "talks"]
    assert hark.collections.get("b-side").name == "b-side"

    updated = hark.collections.update("talks", description="all of them")
    assert updated.description == "all of them" and updated.name == "Conference talks"
    assert list(hark.collections.media("talks")) == []
    assert hark.collections.search("talks", "anything") == []
    with pytest.raises(ValidationError):
        hark.collections.create("not valid!")
    with pytest.raises(NotFoundError):
        hark.collections.get_media("talks", "nope")
    with Client(api_url, other_key) as bob, pytest.raises(NotFoundError):
        bob.collections.get("talks")

    assert hark.collections.delete("talks").id == "talks"
    with pytest.raises(NotFoundError):
        hark.collections.get("talks")
    with pytest.raises(NotFoundError):
        hark.index(b"RIFF", filename="a.wav", collection="talks")


def test_webhook_deliveries_verify_with_the_sdk(hark, worker, events_worker):
    with FakeServer(Reply(200, {})) as receiver:
        hook = hark.webhooks.create(receiver.url + "/hook", ["task.completed"], "client test")
        assert isinstance(hook, Webhook) and hook.secret.startswith("whsec_")
        assert hook.events == ["task.completed"] and hook.enabled
        assert [w.id for w in hark.webhooks.list()] == [hook.id]
        assert hark.webhooks.get(hook.id).secret is None  # shown on create and rotate only

        task = hark.diagnostics_sleep(0)
        sent = wait_until(lambda: receiver.requests)[0]
        event = verify_webhook(sent.body, sent.headers, hook.secret)
        assert event["type"] == "task.completed" and event["data"]["id"] == task.id

        log = wait_until(lambda: hark.webhooks.deliveries(hook.id).items)
        attempt = log[0]
        assert (attempt.event, attempt.outcome, attempt.status_code, attempt.task_id) == \
            ("task.completed", "succeeded", 200, task.id)
        assert attempt.message_id == sent.headers["webhook-id"]

        again = hark.webhooks.redeliver(hook.id, attempt.delivery_id)
        assert again.delivery_id == attempt.delivery_id and again.attempt == 2
        resent = wait_until(lambda: receiver.requests[1:])[0]
        assert resent.headers["webhook-id"] == sent.headers["webhook-id"]
        assert verify_webhook(resent.body, resent.headers, hook.secret) == event

        rotated = hark.webhooks.rotate_secret(hook.id, grace_seconds=0)
        assert rotated.secret and rotated.secret != hook.secret
        disabled = hark.webhooks.update(hook.id, enabled=False)
        assert disabled.enabled is False
        with pytest.raises(ConflictError):
            hark.webhooks.redeliver(hook.id, attempt.delivery_id)
        assert hark.webhooks.delete(hook.id).id == hook.id
        with pytest.raises(NotFoundError):
            hark.webhooks.get(hook.id)
    assert hark.webhooks.callback_secret().secret.startswith("whsec_")
    with pytest.raises(ValidationError):
        hark.webhooks.create("ftp://example.com/hook")
