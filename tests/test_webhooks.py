"""Webhooks end to end: a real task on a real worker, an events worker, a loopback receiver.

The receiver is a ``ThreadingHTTPServer`` that records every request and answers from a
per-test script, so retries, 410s and 4xx can be staged.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select, update
from standardwebhooks.webhooks import Webhook as StandardWebhook

from app.commands import ROOT
from core import dispatch, lifecycle
from core.db import make_engine
from core.events import COMPLETED
from core.models import Task, utcnow
from core.models_webhooks import Webhook, WebhookAttempt, WebhookDelivery
from core.netguard import UnsafeURLError
from core.webhook_signing import verify
from tests.support import fresh_database, start_worker, wait_for
from workers import sweeper, webhook_http, webhooks
from workers.start import worker_argv
from workers.webhooks import Outcome, SendResult, WebhookSettings

SLEEP = "/diagnostics/sleep"
FAST = WebhookSettings(retry_schedule=(0.2, 0.4), allow_private=True, timeout=5.0)


# --- a loopback receiver -------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """Records requests; ``answer(request, nth_for_its_webhook_id)`` picks the response."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.answer: Callable[[Received, int], int | tuple[int, float, bytes]] = (
            lambda r, n: 200)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                   self.rfile.read(length), time.monotonic())
                with receiver.lock:
                    receiver.requests.append(request)
                    nth = sum(r.headers.get("webhook-id") == request.headers.get("webhook-id")
                              for r in receiver.requests)
                answer = receiver.answer(request, nth)
                status, delay, body = answer if isinstance(answer, tuple) else (answer, 0, b"")
                if delay:
                    receiver.release.wait(delay)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/redirected")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # clients that hang up early
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def received(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait(self, count: int, path: str | None = None, timeout: float = 15) -> list[Received]:
        return wait_for(lambda: len(got := self.received(path)) >= count and got,
                        timeout=timeout, message=f"{count} webhook requests at {path or '*'}")

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def events_worker(settings_env, log_dir, app):
    proc = start_worker(settings_env, log_dir, name="events", WORKER_ROLE="events",
                        WEBHOOK_RETRY_SCHEDULE="0.2,0.4", WORKER_CONCURRENCY="8")
    yield proc
    proc.stop()


# --- helpers -------------------------------------------------------------------------


def subscribe(client, auth, url, events=None, status=201, **extra) -> dict:
    body = {"url": url, **extra}
    if events is not None:
        body["events"] = events
    response = client.post("/webhooks", json=body, headers=auth)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def run_task(client, auth, fail=False) -> dict:
    response = client.post(SLEEP, json={"seconds": 0, "fail": fail}, headers=auth)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def log(client, auth, webhook_id, query="") -> dict:
    response = client.get(f"/webhooks/{webhook_id}/deliveries{query}", headers=auth)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def wait_log(client, auth, webhook_id, count, done=True) -> list[dict]:
    """The delivery log once it holds ``count`` attempts (and, if ``done``, no pending)."""
    def ready():
        items = log(client, auth, webhook_id)["deliveries"]
        finished = all(i["delivery_status"] in ("succeeded", "failed") for i in items)
        return len(items) >= count and (finished or not done) and items
    return wait_for(ready, timeout=15, message=f"{count} logged attempts")


def assert_signed(request: Received, secret: str) -> None:
    assert verify(secret, request.headers, request.body)
    assert StandardWebhook(secret).verify(request.body, request.headers) == request.json()


def add_delivery(db, webhook_id, url=None, **values) -> uuid.UUID:
    """A delivery row as a move's outbox writes it, for a real task of alice's."""
    now = utcnow()
    with db.transaction() as s:
        task = lifecycle.create_task(s, owner="alice", endpoint=SLEEP, data={"seconds": 0})
    row = dict(id=uuid.uuid4(), message_id="msg_" + uuid.uuid4().hex, webhook_id=webhook_id,
               url=url, owner="alice", event=COMPLETED, task_id=task.id, task_attempt=1,
               status="pending", attempts=0, retry_from=1, due_at=now, created_at=now,
               updated_at=now)
    row.update(values)
    with db.transaction() as s:
        s.add(WebhookDelivery(**row))
    return row["id"]


# --- subscriptions API ---------------------------------------------------------------


def test_subscription_crud(client, auth):
    created = subscribe(client, auth, "http://127.0.0.1:9/a")
    assert set(created) >= {"id", "url", "events", "secret", "enabled", "created_at"}
    assert created["secret"].startswith("whsec_") and created["events"] is None
    assert created["enabled"] is True
    second = subscribe(client, auth, "https://127.0.0.1:9/b", description="ci",
                       events=["task.failed", "task.completed", "task.failed"])
    assert second["events"] == ["task.failed", "task.completed"]
    listed = client.get("/webhooks", headers=auth).get_json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"], second["id"]]
    assert all("secret" not in w for w in listed)
    one = client.get(f"/webhooks/{created['id']}", headers=auth).get_json()
    assert one["url"] == "http://127.0.0.1:9/a" and "secret" not in one
    changed = client.put(f"/webhooks/{created['id']}", headers=auth,
                         json={"events": ["task.started"], "url": "http://127.0.0.1:9/c",
                               "enabled": False}).get_json()
    assert (changed["events"], changed["url"], changed["enabled"]) == (
        ["task.started"], "http://127.0.0.1:9/c", False)
    assert client.put(f"/webhooks/{created['id']}", headers=auth,
                      json={"events": None, "enabled": True}).get_json()["events"] is None
    deleted = client.delete(f"/webhooks/{created['id']}", headers=auth)
    assert deleted.status_code == 200 and deleted.get_json()["id"] == created["id"]
    assert client.get(f"/webhooks/{created['id']}", headers=auth).status_code == 404
    assert len(client.get("/webhooks", headers=auth).get_json()["webhooks"]) == 1


@pytest.mark.parametrize("body", [
    {}, {"url": 5}, {"url": ""}, {"url": "ftp://127.0.0.1/x"}, {"url": "127.0.0.1/x"},
    {"url": "http://h/" + "a" * 2048}, {"url": "http://h/", "events": []},
    {"url": "http://h/", "events": ["task.bogus"]}, {"url": "http://h/", "secret": "whsec_x"},
])
def test_bad_subscriptions_are_400(client, auth, body):
    response = client.post("/webhooks", json=body, headers=auth)
    assert response.status_code == 400
    assert response.get_json()["error"] == "validation_error"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/",
    "http://169.254.169.254/latest/meta-data", "http://metadata.google.internal/",
    "http://[::1]/hook", "http://[::ffff:192.168.0.1]/",
])
def test_private_destinations_are_refused_unless_allowed(client, auth, app, monkeypatch, url):
    monkeypatch.setitem(app.config, "WEBHOOKS", replace(app.config["WEBHOOKS"],
                                                        allow_private=False))
    refused = client.post("/webhooks", json={"url": url}, headers=auth)
    assert refused.status_code == 400 and refused.get_json()["error"] == "unsafe_url"
    public = subscribe(client, auth, "https://93.184.215.14/hook")
    moved = client.put(f"/webhooks/{public['id']}", json={"url": url}, headers=auth)
    assert moved.status_code == 400 and moved.get_json()["error"] == "unsafe_url"


def test_another_owners_webhooks_are_invisible(client, auth, other_key):
    alice = subscribe(client, auth, "http://127.0.0.1:9/a")
    bob = {"x-api-key": other_key}
    subscribe(client, bob, "http://127.0.0.1:9/b")
    assert [w["url"] for w in client.get("/webhooks", headers=bob).get_json()["webhooks"]] == [
        "http://127.0.0.1:9/b"]
    path = f"/webhooks/{alice['id']}"
    for method, suffix in [("get", ""), ("put", ""), ("delete", ""), ("post", "/rotate-secret"),
                           ("get", "/deliveries"),
                           ("post", f"/deliveries/{uuid.uuid4()}/redeliver")]:
        response = getattr(client, method)(path + suffix, headers=bob, json={})
        assert response.status_code == 404, (method, suffix)
        assert response.get_json()["error"] == "not_found"
    assert client.get(path, headers=auth).status_code == 200
    mine = client.get("/webhooks/callback-secret", headers=auth).get_json()["secret"]
    assert client.get("/webhooks/callback-secret", headers=auth).get_json()["secret"] == mine
    assert client.get("/webhooks/callback-secret", headers=bob).get_json()["secret"] != mine


def test_rotation_api(client, auth):
    created = subscribe(client, auth, "http://127.0.0.1:9/a")
    rotated = client.post(f"/webhooks/{created['id']}/rotate-secret", headers=auth)
    body = rotated.get_json()
    assert rotated.status_code == 200 and body["secret"] != created["secret"]
    assert body["previous_secret_expires_at"] is not None
    now = client.post(f"/webhooks/{created['id']}/rotate-secret", headers=auth,
                      json={"grace_seconds": 0}).get_json()
    assert now["previous_secret_expires_at"] is None
    assert client.post(f"/webhooks/{created['id']}/rotate-secret", headers=auth,
                       json={"grace_seconds": -1}).status_code == 400
    old = client.get("/webhooks/callback-secret", headers=auth).get_json()["secret"]
    new = client.post("/webhooks/callback-secret/rotate", headers=auth).get_json()
    assert new["secret"] != old and new["previous_secret_expires_at"] is not None


# --- delivery, end to end ------------------------------------------------------------


def test_events_are_signed_retried_with_the_same_id_and_logged(client, auth, worker,
                                                               events_worker, receiver):
    receiver.answer = lambda request, nth: 503 if nth <= 2 else 200
    hook = subscribe(client, auth, receiver.url())
    task = run_task(client, auth)
    got = receiver.wait(6)
    by_id: dict[str, list[Received]] = {}
    for request in got:
        by_id.setdefault(request.msg_id, []).append(request)
        assert_signed(request, hook["secret"])
        assert request.headers["content-type"] == "application/json"
    assert len(by_id) == 2 and all(len(sends) == 3 for sends in by_id.values())
    for sends in by_id.values():
        if sends[0].json()["type"] == "task.completed":  # the task did not change since
            assert len({s.body for s in sends}) == 1
        assert sends[1].at - sends[0].at >= 0.1 and sends[2].at - sends[1].at >= 0.2
    payloads = {sends[0].json()["type"]: sends[0].json() for sends in by_id.values()}
    assert set(payloads) == {"task.started", "task.completed"}
    # The body is built from the task row when sent: the started event of a task that
    # finished meanwhile shows it finished; its timestamp is the event's.
    started = payloads["task.started"]
    assert started["data"]["status"] in ("running", "completed")
    assert started["timestamp"] <= payloads["task.completed"]["timestamp"]
    completed = payloads["task.completed"]
    assert set(completed) == {"type", "timestamp", "data"}
    assert completed["data"] == client.get(f"/tasks/{task['id']}", headers=auth).get_json()

    items = wait_log(client, auth, hook["id"], 6)
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    for message_id in by_id:
        mine = sorted((i for i in items if i["message_id"] == message_id),
                      key=lambda i: i["attempt"])
        assert [(i["attempt"], i["status_code"], i["outcome"]) for i in mine] == [
            (1, 503, "retry"), (2, 503, "retry"), (3, 200, "succeeded")]
        assert mine[0]["error"] == "HTTP 503" and mine[2]["error"] is None
        assert all(i["task_id"] == task["id"] and i["duration_ms"] >= 0 for i in mine)
    page = log(client, auth, hook["id"], "?per_page=4")
    rest = log(client, auth, hook["id"], f"?per_page=4&cursor={page['next_cursor']}")
    assert len(page["deliveries"]) == 4 and len(rest["deliveries"]) == 2
    assert rest["next_cursor"] is None
    assert [i["id"] for i in page["deliveries"] + rest["deliveries"]] == [i["id"] for i in items]
    assert log(client, auth, hook["id"], "?per_page=4&page=2")["deliveries"] == rest["deliveries"]


def test_410_disables_the_subscription(client, auth, worker, events_worker, receiver):
    receiver.answer = lambda request, nth: 410
    hook = subscribe(client, auth, receiver.url(), events=["task.completed"])
    run_task(client, auth)
    gone = wait_for(lambda: not (w := client.get(f"/webhooks/{hook['id']}", headers=auth)
                                 .get_json())["enabled"] and w, message="webhook disabled")
    assert "410" in gone["disabled_reason"]
    [attempt] = wait_log(client, auth, hook["id"], 1)
    assert (attempt["status_code"], attempt["outcome"]) == (410, "disabled")
    run_task(client, auth)
    time.sleep(0.8)  # longer than the whole retry schedule
    assert len(receiver.received()) == 1
    redeliver = f"/webhooks/{hook['id']}/deliveries/{attempt['delivery_id']}/redeliver"
    assert client.post(redeliver, headers=auth).status_code == 409
    enabled = client.put(f"/webhooks/{hook['id']}", json={"enabled": True}, headers=auth)
    assert enabled.get_json()["enabled"] is True and enabled.get_json()["disabled_reason"] is None


def test_4xx_stops_retrying_and_redelivery_resends_the_same_message(client, auth, worker,
                                                                     events_worker, receiver):
    receiver.answer = lambda request, nth: 400 if nth == 1 else 204
    hook = subscribe(client, auth, receiver.url(), events=["task.completed"])
    run_task(client, auth)
    [attempt] = wait_log(client, auth, hook["id"], 1)
    assert (attempt["status_code"], attempt["outcome"], attempt["delivery_status"]) == (
        400, "failed", "failed")
    time.sleep(0.8)
    [first] = receiver.received()
    path = f"/webhooks/{hook['id']}/deliveries/{attempt['delivery_id']}/redeliver"
    response = client.post(path, headers=auth)
    assert response.status_code == 202
    assert response.get_json()["message_id"] == first.msg_id == attempt["message_id"]
    second = receiver.wait(2)[1]
    assert second.msg_id == first.msg_id and second.body == first.body
    assert_signed(second, hook["secret"])
    latest = wait_log(client, auth, hook["id"], 2)[0]
    assert (latest["attempt"], latest["status_code"], latest["outcome"]) == (2, 204, "succeeded")
    missing = f"/webhooks/{hook['id']}/deliveries/{uuid.uuid4()}/redeliver"
    assert client.post(missing, headers=auth).status_code == 404


def test_event_filter_and_failed_tasks(client, auth, worker, events_worker, receiver):
    hook = subscribe(client, auth, receiver.url(), events=["task.failed"])
    run_task(client, auth)
    failed = run_task(client, auth, fail=True)
    [request] = receiver.wait(1)
    body = request.json()
    assert body["type"] == "task.failed" and body["data"]["id"] == failed["id"]
    assert body["data"]["status"] == "failed" and body["data"]["error"]["message"]
    assert_signed(request, hook["secret"])
    time.sleep(0.5)
    assert len(receiver.received()) == 1


def test_one_off_callback_gets_the_completion_event(app, client, auth, db, worker,
                                                    events_worker, receiver):
    celery = app.extensions["hark"]["celery"]
    data = {"seconds": 0, "webhook": receiver.url("/callback"),
            "webhook_events": ["task.completed"]}
    task = dispatch.submit(db, celery, owner="alice", endpoint=SLEEP, data=data, queue="cpu")
    [request] = receiver.wait(1, "/callback")
    secret = client.get("/webhooks/callback-secret", headers=auth).get_json()["secret"]
    assert_signed(request, secret)
    body = request.json()
    assert body["type"] == "task.completed" and body["data"]["id"] == str(task.id)
    assert body["data"]["data"]["webhook"] == receiver.url("/callback")
    logged = wait_for(lambda: client.get("/webhooks/callbacks/deliveries", headers=auth)
                      .get_json()["deliveries"], message="callback log")
    assert logged[0]["message_id"] == request.msg_id and logged[0]["status_code"] == 200
    again = f"/webhooks/callbacks/deliveries/{logged[0]['delivery_id']}/redeliver"
    assert client.post(again, headers=auth).status_code == 202
    assert receiver.wait(2, "/callback")[1].msg_id == request.msg_id
    time.sleep(0.3)
    assert len(receiver.received()) == 2  # no task.started: it asked for completion only


def test_rotation_signs_with_both_secrets_during_the_grace(client, auth, worker, events_worker,
                                                           receiver):
    hook = subscribe(client, auth, receiver.url(), events=["task.completed"])
    rotated = client.post(f"/webhooks/{hook['id']}/rotate-secret", headers=auth).get_json()
    run_task(client, auth)
    [request] = receiver.wait(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert_signed(request, hook["secret"])
    assert_signed(request, rotated["secret"])
    final = client.post(f"/webhooks/{hook['id']}/rotate-secret", headers=auth,
                        json={"grace_seconds": 0}).get_json()
    run_task(client, auth)
    latest = receiver.wait(2)[1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    assert_signed(latest, final["secret"])
    assert not verify(rotated["secret"], latest.headers, latest.body)


# --- the outbox under faults (deliveries commit with their move) ------------------------


class _DeliveriesLocked:
    """Holds ``webhook_deliveries`` locked against writes, so the next statement that
    writes a delivery waits: the test steps in while it waits."""

    def __init__(self, db) -> None:
        self.conn = db.engine.connect()
        self.conn.exec_driver_sql("LOCK TABLE webhook_deliveries IN EXCLUSIVE MODE")
        self.pid = self.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()

    @staticmethod
    def writers_waiting(db) -> int:
        with db.engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'webhook_deliveries' AND NOT l.granted").scalar()

    def wait_for_a_writer(self, db) -> None:
        wait_for(lambda: self.writers_waiting(db), timeout=20,
                 message="a statement waiting to write a delivery")

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def _completed_deliveries(db, task_id) -> list:
    with db.session() as s:
        return list(s.scalars(select(WebhookDelivery).where(
            WebhookDelivery.task_id == uuid.UUID(task_id),
            WebhookDelivery.event == COMPLETED)))


def _wait_running(client, auth, task_id) -> None:
    wait_for(lambda: client.get(f"/tasks/{task_id}", headers=auth).get_json()["status"]
             == "running", timeout=30, message="the task to run")


def test_kill_9_of_the_worker_right_after_its_completion_still_delivers_once(
        app, client, auth, db, settings, settings_env, log_dir, events_worker, receiver):
    """The worker finishes its task and is killed at once (while the statement that
    records the finish waits on the deliveries table): the completion event still
    arrives, exactly once, whether the finish committed or the task was re-run."""
    subscribe(client, auth, receiver.url(), events=[COMPLETED])
    doomed = start_worker(settings_env, log_dir, name="doomed", WORKER_CONCURRENCY="1",
                          WORKER_QUEUES="outbox-doomed")
    rescuer = None
    try:
        task_id = client.post(SLEEP + "?defer=true", headers=auth, json={
            "seconds": 2, "queue": "outbox-doomed"}).get_json()["task_id"]
        _wait_running(client, auth, task_id)
        lock = _DeliveriesLocked(db)
        try:
            lock.wait_for_a_writer(db)
            for child in psutil.Process(doomed.pid).children(recursive=True):
                child.send_signal(signal.SIGKILL)
            doomed.stop(signal.SIGKILL)
        finally:
            lock.release()
        # The dead worker's last statement runs to its end (committed or not) ...
        wait_for(lambda: not _DeliveriesLocked.writers_waiting(db), message="lock free")
        if client.get(f"/tasks/{task_id}", headers=auth).get_json()["status"] == "running":
            # ... and if it did not commit, the sweeper re-runs the silent task.
            with db.transaction() as s:
                s.execute(update(Task).where(Task.id == uuid.UUID(task_id))
                          .values(heartbeat_at=utcnow() - timedelta(hours=1)))
            sweeper.sweep(db, app.extensions["hark"]["celery"], settings)
        rescuer = start_worker(settings_env, log_dir, name="rescuer",
                               WORKER_QUEUES="outbox-doomed")
        got = receiver.wait(1, timeout=40)
        wait_for(lambda: all(d.status == "succeeded"
                             for d in _completed_deliveries(db, task_id)), message="sent")
    finally:
        doomed.stop()
        if rescuer is not None:
            rescuer.stop()
    [delivery] = _completed_deliveries(db, task_id)
    assert [r.msg_id for r in got] == [delivery.message_id]
    assert client.get(f"/tasks/{task_id}", headers=auth).get_json()["status"] == "completed"


def test_a_database_restart_between_completion_and_delivery_loses_nothing(
        client, auth, db, worker, events_worker, receiver, database_url):
    """Every connection to the database is cut while the finish is recorded: the move is
    retried and commits with its delivery, which arrives exactly once."""
    subscribe(client, auth, receiver.url(), events=[COMPLETED])
    task_id = client.post(SLEEP + "?defer=true", headers=auth,
                          json={"seconds": 1}).get_json()["task_id"]
    _wait_running(client, auth, task_id)
    lock = _DeliveriesLocked(db)
    try:
        lock.wait_for_a_writer(db)
        name = database_url.rsplit("/", 1)[1]
        lock.conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
    finally:
        lock.release()
    got = receiver.wait(1, timeout=30)
    wait_for(lambda: client.get(f"/tasks/{task_id}", headers=auth).get_json()["status"]
             == "completed", message="completed")
    wait_for(lambda: all(d.status == "succeeded" for d in _completed_deliveries(db, task_id)),
             message="sent")
    [delivery] = _completed_deliveries(db, task_id)
    assert [r.msg_id for r in got] == [delivery.message_id]


def test_a_slow_subscriber_holds_up_neither_tasks_nor_others(client, auth, worker,
                                                             events_worker, receiver):
    receiver.answer = lambda request, nth: (200, 5.0, b"") if request.path == "/slow" else 200
    subscribe(client, auth, receiver.url("/slow"), events=["task.completed"])
    subscribe(client, auth, receiver.url("/fast"), events=["task.completed"])
    started = time.monotonic()
    run_task(client, auth)
    assert time.monotonic() - started < 3
    receiver.wait(1, "/fast", timeout=3)
    receiver.wait(1, "/slow", timeout=3)  # still being answered, slowly


# --- delivery functions, in process --------------------------------------------------


def test_send_times_out_refuses_redirects_and_caps_the_body(receiver):
    def answer(request, nth):
        return {"/slow": (200, 3.0, b""), "/redirect": 302,
                "/big": (200, 0, b"x" * 5_000_000)}.get(request.path, 200)

    receiver.answer = answer
    quick = replace(FAST, timeout=0.5)
    started = time.monotonic()
    slow = webhooks.send(receiver.url("/slow"), {}, b"{}", quick)
    assert time.monotonic() - started < 2
    assert slow.status_code is None and slow.retryable and "timed out" in slow.error
    assert webhooks.classify(slow) is Outcome.RETRY
    moved = webhooks.send(receiver.url("/redirect"), {}, b"{}", FAST)
    assert moved.status_code == 302 and webhooks.classify(moved) is Outcome.FAILED
    assert "redirects are not followed" in webhooks.describe(moved)
    big = webhooks.send(receiver.url("/big"), {}, b"{}", FAST)
    assert big.status_code == 200 and webhooks.classify(big) is Outcome.SUCCEEDED
    assert [r.path for r in receiver.received()] == ["/slow", "/redirect", "/big"]
    dead = webhooks.send("http://127.0.0.1:1/", {}, b"{}", FAST)
    assert dead.retryable and dead.error.startswith("connection error")


def test_private_addresses_are_refused_at_send_time_too(receiver, monkeypatch):
    strict = replace(FAST, allow_private=False)
    refused = webhooks.send(receiver.url(), {}, b"{}", strict)
    assert refused.error.startswith("refused URL") and not refused.retryable
    assert webhooks.classify(refused) is Outcome.FAILED

    def rebinding(host, port, *args, **kwargs):  # a name that now points inside
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert webhooks.send("http://hooks.example/x", {}, b"{}", strict).error.startswith(
        "refused URL")
    assert receiver.received() == []


def test_the_checked_address_is_the_one_connected_to(monkeypatch):
    def public(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", public)
    target = asyncio.run(webhook_http._pinned("https://hooks.example/in?x=1", False))
    assert target.url == "https://93.184.215.14:443/in?x=1"
    assert target.headers == {"Host": "hooks.example"}
    assert target.extensions == {"sni_hostname": "hooks.example"}
    with pytest.raises(UnsafeURLError):
        asyncio.run(webhook_http._pinned("gopher://hooks.example/", False))


def test_outcomes_and_retry_delays():
    for code, outcome in [(200, "succeeded"), (204, "succeeded"), (410, "disabled"),
                          (429, "retry"), (500, "retry"), (503, "retry"), (400, "failed"),
                          (404, "failed"), (301, "failed")]:
        assert webhooks.classify(SendResult(status_code=code)) == outcome, code
    assert webhooks.classify(SendResult(error="x", retryable=True)) is Outcome.RETRY
    settings = WebhookSettings(retry_schedule=(10.0, 100.0), retry_jitter=0.2)
    for _ in range(50):
        assert 8 <= webhooks.retry_delay(settings, 0) <= 12
        assert 80 <= webhooks.retry_delay(settings, 1) <= 120
    assert webhooks.retry_delay(settings, 2) is None
    assert webhooks.retry_delay(settings, 0, retry_after=60) == 60
    assert webhooks.retry_delay(settings, 0, retry_after=10_000) == 100
    assert webhooks.parse_schedule("0.2, 0.4") == (0.2, 0.4)
    assert webhooks.parse_schedule("") == webhooks.DEFAULT_RETRY_SCHEDULE
    assert webhooks.DEFAULT_RETRY_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)
    with pytest.raises(ValueError):
        webhooks.parse_schedule("5,-1")
    env = WebhookSettings.from_env({"WEBHOOK_RETRY_SCHEDULE": "1,2", "WEBHOOK_TIMEOUT": "3",
                                    "WEBHOOK_CONNECT_TIMEOUT": "1", "WEBHOOK_ALLOW_PRIVATE": "1"})
    assert (env.retry_schedule, env.timeout, env.connect_timeout, env.allow_private) == (
        (1.0, 2.0), 3.0, 1.0, True)
    assert WebhookSettings.from_env({}).allow_private is False


def test_relays_claim_each_due_delivery_once_and_skip_locked_rows(app, client, auth, db,
                                                                 receiver):
    """Two relays never send one attempt: a row another relay holds is skipped (not
    waited for), a claimed row is not due any more, and an unsafe URL is refused."""
    hook = subscribe(client, auth, receiver.url())
    delivery_id = add_delivery(db, uuid.UUID(hook["id"]))
    with db.engine.connect() as other_relay:  # holds the row, as a relay mid-claim would
        other_relay.execute(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                            .with_for_update())
        assert webhooks.claim_due(db, 10, lease=60) == []
        other_relay.rollback()
    [claimed] = webhooks.claim_due(db, 10, lease=60)
    assert (claimed.id, claimed.status, claimed.attempts) == (delivery_id, "sending", 1)
    assert webhooks.claim_due(db, 10, lease=60) == []
    strict = replace(FAST, allow_private=False)
    assert webhooks.deliver(db, claimed, strict) == "failed"
    assert receiver.received() == []
    [attempt] = log(client, auth, hook["id"])["deliveries"]
    assert attempt["error"].startswith("refused URL") and attempt["status_code"] is None


def test_a_delivery_of_a_deleted_task_is_dropped(app, client, auth, db, receiver):
    hook = subscribe(client, auth, receiver.url())
    delivery_id = add_delivery(db, uuid.UUID(hook["id"]))
    with db.transaction() as s:
        task_id = s.get(WebhookDelivery, delivery_id).task_id
        lifecycle.delete_task(s, task_id)
    [claimed] = webhooks.claim_due(db, 10, lease=60)
    assert webhooks.deliver(db, claimed, FAST) == "failed"
    assert "deleted" in _deliveries(db)[0].last_error and receiver.received() == []


def test_relay_sends_due_rows_and_recovery_counts_lost_attempts(app, client, auth, db,
                                                                events_worker, receiver):
    hook = subscribe(client, auth, receiver.url())
    webhook_id = uuid.UUID(hook["id"])
    long_ago = utcnow() - timedelta(hours=1)
    lost_worker = add_delivery(db, webhook_id, status="sending", attempts=1, due_at=long_ago)
    old = add_delivery(db, webhook_id, status="succeeded", attempts=1, due_at=None,
                       finished_at=utcnow() - timedelta(days=45))
    report = webhooks.recover(db, FAST)
    assert (report.lost_attempts, report.deleted) == (1, 1)
    waiting = add_delivery(db, webhook_id)  # due now: no message needed, the relay finds it
    got = receiver.wait(2)
    assert {r.msg_id for r in got} == {
        d.message_id for d in _deliveries(db) if d.id in (waiting, lost_worker)}
    wait_for(lambda: all(d.status == "succeeded" for d in _deliveries(db)), message="sent")
    attempts = {(a.delivery_id, a.attempt): a for a in _attempts(db)}
    assert "worker was lost" in attempts[(lost_worker, 1)].error
    assert attempts[(lost_worker, 2)].status_code == 200
    assert attempts[(waiting, 1)].status_code == 200
    assert old not in {d.id for d in _deliveries(db)}


def _deliveries(db):
    with db.session() as s:
        return list(s.scalars(select(WebhookDelivery)))


def _attempts(db):
    with db.session() as s:
        return list(s.scalars(select(WebhookAttempt)))


def test_deleting_a_webhook_drops_its_log(client, auth, db):
    hook = subscribe(client, auth, "http://127.0.0.1:9/a")
    add_delivery(db, uuid.UUID(hook["id"]))
    assert client.delete(f"/webhooks/{hook['id']}", headers=auth).status_code == 200
    assert _deliveries(db) == []
    with db.session() as s:
        assert s.scalar(select(Webhook)) is None


# --- worker role and migration -------------------------------------------------------


def test_events_worker_role():
    env = {"WORKER_ROLE": "events"}
    args = worker_argv(env)
    assert args[args.index("--queues") + 1] == "webhooks,maintenance"
    assert args[args.index("--pool") + 1] == "threads"
    assert args[args.index("--concurrency") + 1] == "16"
    assert args[args.index("--hostname") + 1] == "events@%h"
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    model = worker_argv({})
    assert model[model.index("--queues") + 1] == "cpu,maintenance"
    assert model[model.index("--pool") + 1] == "threads"  # the batching pool
    with pytest.raises(ValueError):
        worker_argv({"WORKER_ROLE": "gpu"})


def test_migration_0002_upgrades_and_downgrades(pg_admin):
    with fresh_database("hark_mig") as url:
        _upgrade_downgrade_0002(url)


def _upgrade_downgrade_0002(url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    tables = {"webhooks", "webhook_callback_secrets", "webhook_deliveries", "webhook_attempts"}
    engine = make_engine(url)
    try:
        command.upgrade(config, "0002")
        assert tables <= set(inspect(engine).get_table_names())
        command.downgrade(config, "0001")
        assert not tables & set(inspect(engine).get_table_names())
        command.upgrade(config, "0002")
    finally:
        engine.dispose()
