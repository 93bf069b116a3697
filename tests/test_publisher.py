"""The one-LPUSH publisher writes what ``send_task`` writes, and workers run it."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from core import dispatch
from core.celery_config import make_celery
from core.publisher import redis_publisher

# Fields that differ between any two publishes, or that we set on purpose.
_VOLATILE = {("properties", "delivery_tag"), ("properties", "reply_to"),
             ("headers", "ignore_result")}


def _raw(settings, key: str) -> dict:
    client = redis.Redis.from_url(settings.broker_url)
    payload = client.rpop(settings.broker_key_prefix + key)
    assert payload is not None, f"nothing on {key}"
    return json.loads(payload)


def _without_volatile(message: dict) -> dict:
    message = json.loads(json.dumps(message))
    for section, field in _VOLATILE:
        message[section].pop(field, None)
    return message


@pytest.mark.parametrize("priority", [0, 4, 9])
def test_same_message_as_send_task(settings, priority):
    app = make_celery(settings)
    task_id = str(uuid.uuid4())
    broker_pri = dispatch.broker_priority(priority, settings.broker_url)
    queue = f"publisher-test-{uuid.uuid4().hex[:6]}"
    app.send_task(dispatch.EXECUTE_TASK, args=[task_id], task_id=task_id, queue=queue,
                  priority=broker_pri)
    publisher = redis_publisher(app)
    assert publisher is not None
    publisher.publish(dispatch.EXECUTE_TASK, task_id, [task_id], queue, broker_pri)
    suffix = f":{broker_pri}" if broker_pri else ""
    by_celery, by_us = _raw(settings, queue + suffix), _raw(settings, queue + suffix)
    assert _without_volatile(by_us) == _without_volatile(by_celery)
    assert by_us["headers"]["ignore_result"] is True


def test_other_brokers_use_send_task(settings):
    from dataclasses import replace

    app = make_celery(replace(settings, broker_url="amqp://guest@127.0.0.1//"))
    assert redis_publisher(app) is None


def test_published_task_runs_on_a_worker(app, auth, worker):
    client = app.test_client()
    response = client.post("/diagnostics/sleep", json={"seconds": 0}, headers=auth)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "completed"


def test_many_threads_publish_at_once(settings):
    """More publishing threads than kombu's pool has connections: all land, none refused."""
    from concurrent.futures import ThreadPoolExecutor

    app = make_celery(settings)
    publisher = redis_publisher(app)
    queue = f"publisher-load-{uuid.uuid4().hex[:6]}"
    ids = [str(uuid.uuid4()) for _ in range(640)]
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda i: publisher.publish(dispatch.EXECUTE_TASK, i, [i], queue, 0),
                      ids))
    client = redis.Redis.from_url(settings.broker_url)
    key = settings.broker_key_prefix + queue
    try:
        assert client.llen(key) == len(ids)
    finally:
        client.delete(key)
    # As many connections at once as an API process has threads (kombu's pool: 10).
    pool = publisher._client.connection_pool
    held = [pool.get_connection() for _ in range(32)]
    for connection in held:
        pool.release(connection)


def test_broker_channels_reuse_one_command_client(settings):
    """kombu builds a redis client per command; Hark's transport keeps one per channel,
    and messages still travel (published and read back through the same transport)."""
    from core.broker_transport import Channel

    app = make_celery(settings)
    queue = f"transport-test-{uuid.uuid4().hex[:6]}"
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
        with conn.SimpleQueue(queue) as simple:
            simple.put({"n": 1})
            simple.put({"n": 2})
            got = [simple.get(timeout=5) for _ in range(2)]
            for message in got:
                message.ack()
        assert [m.payload for m in got] == [{"n": 1}, {"n": 2}]
        with channel.conn_or_acquire() as third:
            assert third is first
