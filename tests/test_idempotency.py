"""``Idempotency-Key``: a repeated submission names the first one's task, stores nothing new."""

from __future__ import annotations

import base64
import dataclasses
import io
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.idempotency import IN_FLIGHT_WAIT
from core import dispatch, idempotency
from core.models import MediaBlob, Task, utcnow
from core.models_idempotency import IdempotencyKey

SLEEP = "/diagnostics/sleep"


def count(db, model) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def post(client, auth, key, body=None, path=SLEEP + "?defer=true", **kw):
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    return client.post(path, json=body if body is not None else {"seconds": 0},
                       headers=headers, **kw)


def test_a_repeat_names_the_same_task_and_makes_no_row(client, auth, db):
    first = post(client, auth, "k-1")
    again = post(client, auth, "k-1")
    assert first.status_code == again.status_code == 202
    assert first.get_json()["task_id"] == again.get_json()["task_id"]
    assert count(db, Task) == 1 and count(db, IdempotencyKey) == 1
    other = post(client, auth, "k-2")
    plain = post(client, auth, None)
    assert len({r.get_json()["task_id"] for r in (first, other, plain)}) == 3


def test_the_same_key_for_another_request_is_409(client, auth, db):
    first = post(client, auth, "k-1", {"seconds": 0})
    refused = post(client, auth, "k-1", {"seconds": 1})
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["error"] == "idempotency_key_reused"
    assert "'k-1'" in body["message"] and "/diagnostics/sleep" in body["message"]
    assert first.get_json()["task_id"] in body["message"]
    assert count(db, Task) == 1


def test_keys_belong_to_their_owner(client, auth, other_key, db):
    mine = post(client, auth, "shared")
    theirs = post(client, {"x-api-key": other_key}, "shared", {"seconds": 5})
    assert theirs.status_code == 202
    assert mine.get_json()["task_id"] != theirs.get_json()["task_id"]


@pytest.mark.parametrize("form", ["multipart", "base64"])
def test_an_upload_is_stored_once_and_its_content_is_part_of_the_request(client, auth, db,
                                                                         form):
    """Multipart: the key is claimed before the file is read; base64 (JSON): by the
    task's INSERT, in the transaction that would store the blob."""
    def upload(content: bytes):
        headers = {**auth, "Idempotency-Key": "up"}
        if form == "base64":
            media = {"base64": base64.b64encode(content).decode(), "filename": "a.wav"}
            return client.post("/analyze?defer=true", headers=headers,
                               json={"media": media, "language": "en"})
        return client.post("/analyze?defer=true", headers=headers,
                           data={"file": (io.BytesIO(content), "a.wav"), "language": "en"},
                           content_type="multipart/form-data")

    first, again = upload(b"RIFF0000WAVEdata"), upload(b"RIFF0000WAVEdata")
    assert first.status_code == 202, first.get_json()
    assert again.get_json()["task_id"] == first.get_json()["task_id"]
    assert count(db, MediaBlob) == 1 and count(db, Task) == 1
    changed = upload(b"RIFF1111WAVEdata")
    assert changed.status_code == 409 and count(db, MediaBlob) == 1


def test_a_refused_request_frees_its_key(client, auth, db):
    bad = post(client, auth, "k-1", {"seconds": -1})
    assert bad.status_code == 400 and count(db, IdempotencyKey) == 0
    good = post(client, auth, "k-1", {"seconds": 0})
    assert good.status_code == 202 and count(db, Task) == 1


def test_a_key_expires_after_24_hours(client, auth, db):
    post(client, auth, "k-1", {"seconds": 0})
    with db.transaction() as session:
        session.execute(update(IdempotencyKey).values(
            created_at=utcnow() - idempotency.KEY_LIFETIME - timedelta(seconds=1)))
    reused = post(client, auth, "k-1", {"seconds": 1})
    assert reused.status_code == 202 and count(db, Task) == 2


def test_a_repeat_after_its_task_was_deleted_is_404(client, auth, db):
    first = post(client, auth, "k-1").get_json()["task_id"]
    assert client.delete(f"/tasks/{first}", headers=auth).status_code == 200
    with db.transaction() as session:  # long past any in-flight first request
        session.execute(update(IdempotencyKey).values(
            created_at=utcnow() - timedelta(seconds=IN_FLIGHT_WAIT + 1)))
    gone = post(client, auth, "k-1")
    assert gone.status_code == 404 and "deleted" in gone.get_json()["message"]
    assert count(db, Task) == 0


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_bad_keys_are_400(client, auth, key, db):
    response = client.post(SLEEP, json={"seconds": 0},
                           headers={**auth, "Idempotency-Key": key})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_idempotency_key"
    assert count(db, Task) == 0


def test_a_sync_replay_waits_for_the_task_to_finish(client, auth, db, worker):
    deferred = post(client, auth, "k-1", {"seconds": 0.3})
    waited = post(client, auth, "k-1", {"seconds": 0.3}, path=SLEEP + "?timeout=30")
    assert waited.status_code == 200, waited.get_json()
    body = waited.get_json()
    assert body["task_id"] == deferred.get_json()["task_id"] and body["status"] == "completed"
    assert count(db, Task) == 1


def _waiting_keyed_inserts(db) -> int:
    """Backends whose keyed submission statement waits for a lock."""
    with db.engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' "
            "AND position('INSERT INTO idempotency_keys' IN query) > 0").scalar()


def test_concurrent_requests_with_one_key_make_one_task(client, auth, db):
    """The first request's statement has claimed the key and is held before its commit
    (by a lock on the owner's task counters, which its task's row updates); the second's
    claim waits for that commit, then answers like a replay. No sleeps: each step waits
    for the database to show the previous one."""
    from tests.support import wait_for

    assert post(client, auth, None).status_code == 202  # the owner has counter rows
    with db.engine.begin() as conn:  # every shard, so whichever the trigger picks is held
        conn.exec_driver_sql(
            "INSERT INTO task_counts (owner, status, shard, n) SELECT DISTINCT owner, "
            "'assigned', s, 0 FROM task_counts, generate_series(0, 15) AS s "
            "ON CONFLICT DO NOTHING")
    holder = db.engine.connect()
    holder.exec_driver_sql("SELECT FROM task_counts FOR UPDATE")
    answers: dict[str, object] = {}
    threads = [threading.Thread(target=lambda n=n: answers.update({n: post(client, auth, "k-1")}))
               for n in ("a", "b")]
    try:
        threads[0].start()
        wait_for(lambda: _waiting_keyed_inserts(db) == 1, message="the first to be held")
        threads[1].start()
        wait_for(lambda: _waiting_keyed_inserts(db) == 2,
                 message="the second to wait for the first's claim")
    finally:
        holder.rollback()
        holder.close()
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join(30)
    a, b = answers["a"], answers["b"]
    assert a.status_code == b.status_code == 202, (a.get_json(), b.get_json())
    assert a.get_json()["task_id"] == b.get_json()["task_id"]
    assert count(db, Task) == 2 and count(db, IdempotencyKey) == 1


def test_concurrent_uploads_with_one_key_make_one_task(client, auth, db, monkeypatch):
    """An upload's key is claimed before the upload is read: a second request with it,
    arriving while the first has not made its task, waits for that task."""
    claimed, go = threading.Event(), threading.Event()
    second_claimed = threading.Event()
    real_submit, real_claim = dispatch.submit, idempotency.claim

    def slow_submit(*args, **kwargs):
        claimed.set()  # the first request holds the key and has not made its task yet
        assert go.wait(10)
        return real_submit(*args, **kwargs)

    def watched_claim(*args, **kwargs):
        found = real_claim(*args, **kwargs)
        if not found.new:
            second_claimed.set()
        return found

    def upload():
        return client.post("/analyze?defer=true", headers={**auth, "Idempotency-Key": "up"},
                           data={"file": (io.BytesIO(b"RIFF0000WAVEdata"), "a.wav")},
                           content_type="multipart/form-data")

    monkeypatch.setattr(dispatch, "submit", slow_submit)
    monkeypatch.setattr(idempotency, "claim", watched_claim)
    answers: dict[str, object] = {}
    first = threading.Thread(target=lambda: answers.update(a=upload()))
    second = threading.Thread(target=lambda: answers.update(b=upload()))
    first.start()
    assert claimed.wait(10)
    second.start()
    assert second_claimed.wait(10)  # it found the key held by a request still in flight
    go.set()
    first.join(10)
    second.join(10)
    a, b = answers["a"], answers["b"]
    assert a.status_code == b.status_code == 202, (a.get_json(), b.get_json())
    assert a.get_json()["task_id"] == b.get_json()["task_id"]
    assert count(db, Task) == 1 and count(db, MediaBlob) == 1


def test_a_held_key_answers_a_request_its_handler_would_refuse(client, auth, db):
    """The key is looked up when the request is refused before its statement ran: the
    same key with another (here invalid) request is still the 409, not a 400."""
    first = post(client, auth, "k-1", {"seconds": 0})
    refused = post(client, auth, "k-1", {"seconds": -1})
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "idempotency_key_reused"
    assert first.get_json()["task_id"] in refused.get_json()["message"]


@pytest.fixture()
def capped(app, monkeypatch):
    settings = app.config["HARK"]
    monkeypatch.setitem(app.config, "HARK", dataclasses.replace(settings, max_active_tasks=1))
    return app.test_client()


def test_the_active_task_cap_claims_no_key_and_lets_a_replay_through(capped, auth, db):
    parked = {"seconds": 0, "queue": "idem-nobody-consumes"}
    first = post(capped, auth, "k-1", parked)
    assert first.status_code == 202
    refused = post(capped, auth, "k-2", parked)
    assert refused.status_code == 429 and count(db, IdempotencyKey) == 1
    again = post(capped, auth, "k-1", parked)  # at the cap, its replay is still answered
    assert again.status_code == 202
    assert again.get_json()["task_id"] == first.get_json()["task_id"]
    with db.transaction() as session:
        session.execute(update(Task).values(status="completed"))
    retried = post(capped, auth, "k-2", parked)  # the refusal left nothing to block it
    assert retried.status_code == 202 and count(db, Task) == 2


@pytest.fixture(scope="module")
def two_apis(settings_env, log_dir, worker):
    """Two API processes (gunicorn), as behind a load balancer."""
    from tests.support import start_api

    started = [start_api(settings_env, log_dir) for _ in range(2)]
    yield [url for _, url in started]
    for process, _ in started:
        process.stop()


@pytest.mark.parametrize("first", ["deferred", "sync"])
def test_a_sync_replay_on_another_api_process_returns_the_finished_task(
        two_apis, api_key, db, first):
    """The finish is announced to the first request's process (or, deferred, to none);
    the replay waits on the other one and answers with the finished task."""
    import httpx

    from tests.support import wait_for

    one, two = two_apis
    headers = {"x-api-key": api_key, "Idempotency-Key": f"k-{first}"}
    body = {"seconds": 1.0}
    answers: dict[str, httpx.Response] = {}

    def submit():
        answers["first"] = httpx.post(
            one + SLEEP + ("?defer=true" if first == "deferred" else "?timeout=60"),
            json=body, headers=headers, timeout=90)

    thread = threading.Thread(target=submit)
    thread.start()
    try:
        def running():
            with db.session() as session:
                return session.scalar(select(Task).where(Task.status == "running"))

        task = wait_for(running, timeout=60, message="the task to run")
        replay = httpx.post(two + SLEEP + "?defer=false&timeout=60", json=body,
                            headers=headers, timeout=90)
    finally:
        thread.join(90)
    assert replay.status_code == 200, replay.text
    assert replay.json()["task_id"] == str(task.id)
    assert replay.json()["status"] == "completed" and replay.json()["result"]
    original = answers["first"].json()
    assert original["task_id"] == str(task.id)
    assert answers["first"].status_code == (202 if first == "deferred" else 200)
    assert count(db, Task) == 1
