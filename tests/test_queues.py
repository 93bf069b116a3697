"""A queue no online worker consumes: refused while workers are online (400 naming the
queues they consume) unless ``ALLOW_UNKNOWN_QUEUES``; accepted while none is online.
What workers report is read once per ``PRESENCE_CACHE_SECONDS``."""

from __future__ import annotations

import io
import uuid
import wave
from dataclasses import replace
from datetime import timedelta

import pytest
import redis
from sqlalchemy import event, func, select

from app import create_app
from core.keys import create_key
from core.models import MediaBlob, Task, WorkerPresence, utcnow
from core.worker_models import online_report
from tests.support import fresh_database, wait_for


@pytest.fixture(scope="module")
def own_database(settings, pg_admin):
    """A database of its own: no worker of the session reports there."""
    from app.commands import upgrade_database

    with fresh_database("hark_queues") as url:
        upgrade_database(url)
        yield url


@pytest.fixture()
def make_app(settings, own_database):
    """Apps refusing unknown queues (overrides apply) on ``own_database``, emptied first;
    a broker namespace of their own (nothing consumes what they publish)."""
    apps, prefix = [], f"hark-queues-{uuid.uuid4().hex[:8]}:"

    def make(**overrides):
        options = {"database_url": own_database, "broker_key_prefix": prefix,
                   "allow_unknown_queues": False, "presence_cache_seconds": 0.0,
                   "api_bootstrap_key": None, **overrides}
        application = create_app(replace(settings, **options))
        apps.append(application)
        return application

    first = make()
    with first.extensions["hark"]["db"].transaction() as session:
        session.query(WorkerPresence).delete()
        session.query(Task).delete()
    yield make
    for application in apps:
        application.extensions["hark"]["waiter"].close()
        application.extensions["hark"]["db"].dispose()
    client = redis.Redis.from_url(settings.broker_url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def headers(application) -> dict[str, str]:
    with application.extensions["hark"]["db"].transaction() as session:
        _, raw = create_key(session, name="q", owner=f"q-{uuid.uuid4().hex[:6]}")
    return {"x-api-key": raw}


def online(application, pid: int, queues: list[str], role: str = "model",
           age: float = 0.0) -> None:
    """A worker's presence row, as ``workers.presence`` writes it."""
    with application.extensions["hark"]["db"].transaction() as session:
        session.add(WorkerPresence(
            id=f"q:{pid}", node="q", host="h", pid=pid, role=role, device="cpu",
            queues=queues, models=[], available=[], stats={},
            last_seen=utcnow() - timedelta(seconds=age)))


def sleep(client, auth, queue: str | None):
    body = {"seconds": 0, **({"queue": queue} if queue else {})}
    return client.post("/diagnostics/sleep?defer=true", json=body, headers=auth)


def silence() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    return out.getvalue()


def task_count(application) -> int:
    with application.extensions["hark"]["db"].session() as session:
        return session.scalar(select(func.count()).select_from(Task))


def test_no_worker_online_accepts_any_queue(make_app):
    application = make_app()
    client, auth = application.test_client(), headers(application)
    online(application, 1, ["queue-a"], age=3600)  # offline: does not count
    online(application, 2, ["webhooks", "maintenance"], role="events")  # runs no tasks
    answer = sleep(client, auth, "queue-b")
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["status"] == "assigned"


def test_queue_no_online_worker_consumes_is_refused_naming_theirs(make_app):
    application = make_app()
    client, auth = application.test_client(), headers(application)
    online(application, 1, ["queue-a", "maintenance"])
    online(application, 2, ["cpu", "maintenance"])
    refused = sleep(client, auth, "queue-b")
    assert refused.status_code == 400
    body = refused.get_json()
    assert body["error"] == "unknown_queue"
    assert body["message"] == ("no online worker consumes queue 'queue-b'; online workers "
                               "consume: cpu, queue-a")
    assert body["details"] == {"queue": ["choose one of ['cpu', 'queue-a']"]}
    # ... and left nothing behind; a consumed queue (or the default one) is taken.
    assert task_count(application) == 0
    assert sleep(client, auth, "queue-a").status_code == 202
    assert sleep(client, auth, None).status_code == 202  # DEFAULT_DEVICE's queue: cpu


def test_refused_upload_is_not_stored_and_frees_its_idempotency_key(make_app):
    application = make_app()
    client, auth = application.test_client(), headers(application)
    online(application, 1, ["queue-a"])
    form = {"file": (io.BytesIO(silence()), "a.wav"), "queue": "queue-b"}
    keyed = {**auth, "Idempotency-Key": "k-1"}
    refused = client.post("/analyze?defer=true", data=form, headers=keyed)
    assert refused.status_code == 400 and refused.get_json()["error"] == "unknown_queue"
    assert task_count(application) == 0
    with application.extensions["hark"]["db"].session() as session:
        assert session.scalar(select(func.count()).select_from(MediaBlob)) == 0
    # The key was freed: the same key with a consumed queue makes the task.
    form = {"file": (io.BytesIO(silence()), "a.wav"), "queue": "queue-a"}
    assert client.post("/analyze?defer=true", data=form, headers=keyed).status_code == 202


def test_device_queue_is_checked_too(make_app):
    application = make_app()
    client, auth = application.test_client(), headers(application)
    online(application, 1, ["cpu", "maintenance"])
    answer = client.post("/diagnostics/sleep?defer=true", json={"seconds": 0, "device": "gpu"},
                         headers=auth)
    assert answer.status_code == 400 and "queue 'gpu'" in answer.get_json()["message"]


def test_allow_unknown_queues_accepts_them(make_app):
    application = make_app(allow_unknown_queues=True)
    client, auth = application.test_client(), headers(application)
    online(application, 1, ["queue-a"])
    assert sleep(client, auth, "queue-b").status_code == 202


def test_presence_is_read_once_per_cache_period(make_app):
    application = make_app(presence_cache_seconds=3600.0)
    client, auth = application.test_client(), headers(application)
    reads: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if statement.startswith("SELECT") and "FROM worker_presence" in statement:
            reads.append(statement)

    engine = application.extensions["hark"]["db"].engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        online(application, 1, ["queue-a"])
        for _ in range(5):
            assert sleep(client, auth, "queue-a").status_code == 202
        assert len(reads) == 1  # one read for five submissions
        online(application, 2, ["queue-b"])  # not seen until the cache expires
        assert sleep(client, auth, "queue-b").status_code == 400
        application.extensions["hark"]["online"].ttl = 0.0
        application.extensions["hark"]["online"]._entry = None
        assert sleep(client, auth, "queue-b").status_code == 202
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_real_worker_queues_are_what_the_api_accepts(settings, worker, db, api_key):
    """The session's worker (queues cpu and maintenance), through its own presence row."""
    application = create_app(replace(settings, allow_unknown_queues=False))
    try:
        def report():
            with db.session() as session:
                return online_report(session, settings.heartbeat_interval).queues

        wait_for(lambda: "cpu" in report(), message="the worker's presence row")
        client, auth = application.test_client(), {"x-api-key": api_key}
        refused = sleep(client, auth, "nobody-consumes-this")
        assert refused.status_code == 400
        assert refused.get_json()["message"].endswith("online workers consume: cpu")
        done = client.post("/diagnostics/sleep?timeout=30", json={"seconds": 0, "queue": "cpu"},
                           headers=auth)
        assert done.status_code == 200 and done.get_json()["status"] == "completed"
    finally:
        application.extensions["hark"]["waiter"].close()
        application.extensions["hark"]["db"].dispose()
