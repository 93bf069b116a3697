"""``GET /tasks/<id>/stream``: Server-Sent Events woken by the database's notifications."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from app import create_app
from app.api import task_stream
from core import lifecycle
from core.models_stream import TaskWatcher


def parse(text: str) -> list[dict]:
    """SSE messages as dicts (id, event, data); comments and ``retry:`` dropped."""
    messages = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(":"))
        if "data" in fields:
            messages.append({"id": int(fields["id"]) if "id" in fields else None,
                             "event": fields.get("event"), "data": json.loads(fields["data"])})
    return messages


class Reader:
    """Reads a streaming response message by message (the generator runs on next())."""

    def __init__(self, response) -> None:
        self.chunks = iter(response.response)
        self.response = response
        self.buffer = ""

    def next_message(self) -> dict:
        """The next message; a ``: ping`` comment comes back as ``{"event": "ping"}``."""
        while True:
            if "\n\n" in self.buffer:
                block, self.buffer = self.buffer.split("\n\n", 1)
                found = parse(block + "\n\n")
                if found:
                    return found[0]
                if block.startswith(": ping"):
                    return {"id": None, "event": "ping", "data": None}
                continue
            chunk = next(self.chunks)
            self.buffer += chunk.decode() if isinstance(chunk, bytes) else chunk


def running_task(db, owner: str = "alice") -> uuid.UUID:
    with db.transaction() as session:
        task = lifecycle.create_task(session, owner=owner, endpoint="/diagnostics/sleep",
                                     data={"seconds": 1})
    with db.transaction() as session:
        lifecycle.mark_assigned(session, task.id, "cpu")
    with db.transaction() as session:
        lifecycle.claim(session, task.id, worker="w@test", device="cpu")
    return task.id


def test_a_finished_task_replays_its_events_and_resumes_after_last_event_id(client, db,
                                                                           auth):
    task_id = running_task(db)
    with db.transaction() as session:
        lifecycle.complete(session, task_id, attempt=1, result={"slept": 1})
    response = client.get(f"/tasks/{task_id}/stream", headers=auth)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    messages = parse(response.get_data(as_text=True))
    events = [m for m in messages if m["event"] == "task_event"]
    assert [m["data"]["type"] for m in events] == ["created", "assigned", "started",
                                                   "completed"]
    assert messages[-1] == {"id": None, "event": "end",
                            "data": {"status": "completed", "progress": 100, "error": None}}
    # A reconnect with the second event's id gets only what came after it.
    resumed = parse(client.get(f"/tasks/{task_id}/stream", headers={
        **auth, "Last-Event-ID": str(events[1]["id"])}).get_data(as_text=True))
    assert [m["id"] for m in resumed if m["event"] == "task_event"] == \
        [m["id"] for m in events[2:]]
    assert resumed[-1]["event"] == "end"
    bad = client.get(f"/tasks/{task_id}/stream", headers={**auth, "Last-Event-ID": "x"})
    assert bad.status_code == 400


@pytest.fixture()
def notified_only(monkeypatch):
    """No fallback re-read, a ping after 3 s: a change that is not notified shows up as
    a ping before it."""
    monkeypatch.setattr(task_stream, "FALLBACK_SECONDS", 600.0)
    monkeypatch.setattr(task_stream, "PING_SECONDS", 3.0)


def test_progress_and_the_end_arrive_as_they_happen(client, db, auth, notified_only):
    task_id = running_task(db)
    reader = Reader(client.get(f"/tasks/{task_id}/stream", headers=auth))
    types = [reader.next_message()["data"]["type"] for _ in range(3)]
    assert types == ["created", "assigned", "started"]
    assert reader.next_message()["data"] == {"status": "running", "progress": 0,
                                             "error": None}
    with db.session() as session:  # the stream watches the task now
        assert session.query(TaskWatcher).filter_by(task_id=task_id).count() == 1
    # Each change is heard through its notification (a missed one would show a ping).
    with db.transaction() as session:
        assert lifecycle.heartbeat(session, task_id, progress=40)
    assert reader.next_message()["data"]["progress"] == 40
    with db.transaction() as session:
        lifecycle.complete(session, task_id, attempt=1, result={"slept": 1})
    assert reader.next_message()["data"]["type"] == "completed"
    assert reader.next_message()["data"]["status"] == "completed"
    assert reader.next_message()["event"] == "end"
    reader.response.close()
    with db.session() as session:  # nobody watches: the triggers notify nothing
        assert session.query(TaskWatcher).filter_by(task_id=task_id).count() == 0


def test_a_deleted_task_ends_its_stream(client, db, auth, notified_only):
    task_id = running_task(db)
    reader = Reader(client.get(f"/tasks/{task_id}/stream", headers=auth))
    while reader.next_message()["event"] != "progress":
        pass
    with db.transaction() as session:
        lifecycle.delete_task(session, task_id)
    assert reader.next_message() == {"id": None, "event": "end", "data": {
        "status": "deleted", "progress": 0, "error": None}}


def test_streams_past_the_cap_get_429(settings, db, auth):
    app = create_app(settings.__class__(**{**settings.__dict__, "max_streams": 1}))
    try:
        client = app.test_client()
        task_id = running_task(db)
        first = client.get(f"/tasks/{task_id}/stream", headers=auth)
        assert first.status_code == 200
        second = client.get(f"/tasks/{task_id}/stream", headers=auth)
        assert second.status_code == 429 and second.headers["Retry-After"] == "5"
        assert second.get_json()["error"] == "too_many_streams"
        first.close()  # its slot comes back
        third = client.get(f"/tasks/{task_id}/stream", headers=auth)
        assert third.status_code == 200
        third.close()
    finally:
        app.extensions["hark"]["waiter"].close()
        app.extensions["hark"]["db"].dispose()


def test_other_owners_cannot_stream(client, db, other_key):
    task_id = running_task(db)
    response = client.get(f"/tasks/{task_id}/stream", headers={"x-api-key": other_key})
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert threading.active_count() < 200
