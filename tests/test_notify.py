"""The completion waiter: woken by PostgreSQL NOTIFY, never misses a finish."""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest

from core.notify import CompletionWaiter
from core.task_sql import FINISHED_CHANNEL


@pytest.fixture()
def waiter(database_url):
    made = CompletionWaiter()
    made.configure(database_url)
    yield made
    made.close()


def _notify(database_url: str, task_id: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (FINISHED_CHANNEL, task_id))


def test_subscribed_early_reads_only_after_the_notify(waiter, database_url):
    task_id, checks = str(uuid.uuid4()), []
    with waiter.subscribe(task_id) as subscription:
        assert subscription.armed
        _notify(database_url, task_id)  # finishes before anyone waits: not missed
        started = time.monotonic()
        assert subscription.wait(5, lambda: checks.append(1) or True)
    assert checks == [1] and time.monotonic() - started < 1


def test_wakes_on_a_later_notify_and_ignores_others(waiter, database_url):
    task_id, finished = str(uuid.uuid4()), threading.Event()

    def finish_later():
        time.sleep(0.2)
        _notify(database_url, str(uuid.uuid4()))  # another task
        time.sleep(0.2)
        finished.set()
        _notify(database_url, task_id)

    threading.Thread(target=finish_later).start()
    checks = []
    with waiter.subscribe(task_id) as subscription:
        started = time.monotonic()
        assert subscription.wait(5, lambda: checks.append(1) or finished.is_set())
    assert 0.3 < time.monotonic() - started < 1.5
    assert finished.is_set() and len(checks) <= 2


def test_times_out_when_nothing_finishes(waiter):
    with waiter.subscribe(str(uuid.uuid4())) as subscription:
        started = time.monotonic()
        assert not subscription.wait(0.3, lambda: False)
    assert 0.25 < time.monotonic() - started < 1.5


def test_only_postgresql_urls_are_accepted():
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        CompletionWaiter().configure("sqlite:///var/hark.db")


def test_unreachable_listener_is_not_trusted(database_url):
    waiter = CompletionWaiter()
    waiter.configure("postgresql://postgres@127.0.0.1:1/none")  # nothing listens there
    try:
        with waiter.subscribe("t") as subscription:
            assert not subscription.armed
            assert subscription.wait(1, lambda: True)  # read at once, not after a wake-up
    finally:
        waiter.close()


def test_a_row_payload_reaches_the_waiter(waiter, database_url):
    task_id = str(uuid.uuid4())
    row = json.dumps({"id": task_id, "status": "completed", "result": {"ok": 1}},
                     separators=(", ", " : "))  # as json_build_object writes it
    with waiter.subscribe(task_id) as subscription:
        _notify(database_url, row)
        assert subscription.wait(5, lambda: subscription.row is not None)
    assert subscription.row == {"id": task_id, "status": "completed", "result": {"ok": 1}}


def test_each_process_listens_on_its_own_channel(waiter, database_url):
    task_id = str(uuid.uuid4())
    with waiter.subscribe(task_id) as subscription:
        assert subscription.channel == waiter.channel
        assert waiter.channel.startswith("hark_done_") and waiter.channel != FINISHED_CHANNEL
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (waiter.channel, task_id))
        started = time.monotonic()
        assert subscription.wait(5, lambda: True)
        assert time.monotonic() - started < 1  # woken by the notify, not the 2 s re-check
    other = CompletionWaiter()
    other.configure(database_url)
    try:
        with other.subscribe(task_id):
            assert other.channel != waiter.channel
    finally:
        other.close()
