"""The sync client against the real platform: gunicorn API, PostgreSQL, Redis, a worker."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from hark_client import (
    AuthenticationError,
    Client,
    ConflictError,
    HarkError,
    NotFoundError,
    Task,
    TaskFailedError,
    TaskStatus,
    ValidationError,
    WaitTimeoutError,
)

WAIT = 30  # seconds: a broken platform fails the test instead of hanging it


def test_health(hark):
    health = hark.health()
    assert health.ok and health.database == {"ok": True} and health.broker == {"ok": True}


def test_sleep_waits_on_the_server(hark):
    task = hark.diagnostics_sleep(0.2)
    assert isinstance(task, Task) and task.succeeded and task.finished
    assert task.status == TaskStatus.COMPLETED and task.result["slept"] == 0.2
    assert task.endpoint == "/diagnostics/sleep" and task.progress == 100
    assert isinstance(task.completed_at, datetime) and task.completed_at.tzinfo is not None
    assert task.created_at <= task.started_at <= task.completed_at
    assert task.raw["task_id"] == task.id


def test_defer_then_wait_reports_increasing_progress(hark):
    submitted = hark.diagnostics_sleep(2.0, defer=True)
    assert submitted.status in ("created", "assigned", "running") and not submitted.finished
    seen: list[Task] = []
    done = hark.tasks.wait(submitted.id, poll_interval=0.1, on_progress=seen.append,
                           timeout=WAIT)
    assert done.succeeded and done.id == submitted.id
    progress = [t.progress for t in seen]
    assert progress == sorted(progress), progress
    assert len(set(progress)) >= 3 and any(0 < p < 100 for p in progress)
    assert seen[-1].status == "completed" and seen[-1].progress == 100


def test_sleep_with_wait_polls_past_a_deferred_submit(hark):
    calls: list[int] = []
    task = hark.diagnostics_sleep(0.5, defer=True, wait=True, timeout=WAIT,
                                  on_progress=lambda t: calls.append(t.progress))
    assert task.succeeded and calls and calls[-1] == 100


def test_count_and_list_page_through_every_task(api_url, api_key):
    listed_pages = []
    hooks = {"request": [lambda r: listed_pages.append(r.url) if r.url.path == "/tasks"
                         else None]}
    with Client(api_url, api_key, http_client=httpx.Client(event_hooks=hooks)) as hark:
        ids = [hark.diagnostics_sleep(0, defer=True).id for _ in range(5)]
        counts = hark.tasks.count()
        assert counts.total == 5 and counts.failed == 0
        assert sum(getattr(counts, s.value) for s in TaskStatus) == 5

        everything = list(hark.tasks.list(per_page=2))
        assert [t.id for t in everything] == ids[::-1]  # newest first, each once
        assert len(listed_pages) == 3
        assert "cursor" not in str(listed_pages[0]) and "cursor=" in str(listed_pages[1])

        first_three = list(hark.tasks.list(per_page=2, limit=3))
        assert [t.id for t in first_three] == ids[:1:-1]
        page = hark.tasks.page(page=2, per_page=2)
        assert [t.id for t in page] == [ids[2], ids[1]] and page.next_cursor

        for task_id in ids:
            hark.tasks.wait(task_id, timeout=WAIT)
        assert [t.id for t in hark.tasks.list(status="completed")] == ids[::-1]
        assert list(hark.tasks.list(status="failed")) == []


def test_get_and_delete_cancels(hark):
    task = hark.diagnostics_sleep(30, defer=True)
    fetched = hark.tasks.get(task.id)
    assert fetched.id == task.id and fetched.data == {"seconds": 30, "fail": False}
    deleted = hark.tasks.delete(task.id)
    assert deleted.id == task.id and deleted.status in ("assigned", "running")
    with pytest.raises(NotFoundError) as caught:
        hark.tasks.get(task.id)
    assert (caught.value.status_code, caught.value.code) == (404, "not_found")
    assert caught.value.body == {"error": "not_found", "message": "task not found"}
    with pytest.raises(NotFoundError):
        hark.tasks.delete(task.id)


def test_failed_task_raises_and_can_be_retried(hark):
    with pytest.raises(TaskFailedError) as caught:
        hark.diagnostics_sleep(0, fail=True, wait=True, timeout=WAIT)
    failed = caught.value.task
    assert failed.failed and failed.error["type"] == "DiagnosticFailure"
    assert "on purpose" in str(caught.value)

    retried = hark.tasks.retry(failed.id)
    assert retried.retry_count == 0 and retried.status in ("created", "assigned", "running",
                                                           "failed")
    with pytest.raises(TaskFailedError) as again:  # same input, fails again: really re-ran
        hark.tasks.wait(failed.id, poll_interval=0.1, timeout=WAIT)
    assert again.value.task.attempts == 2


def test_retrying_a_completed_task_is_a_conflict(hark):
    done = hark.diagnostics_sleep(0)
    with pytest.raises(ConflictError) as caught:
        hark.tasks.retry(done.id)
    assert (caught.value.status_code, caught.value.code) == (409, "conflict")
    assert "completed" in caught.value.message


def test_wait_timeout(hark):
    task = hark.diagnostics_sleep(10, defer=True)
    try:
        with pytest.raises(WaitTimeoutError) as caught:
            hark.tasks.wait(task.id, timeout=0.5, poll_interval=0.1)
        assert isinstance(caught.value, TimeoutError)  # the builtin, too
        assert caught.value.task.id == task.id and not caught.value.task.finished
        assert caught.value.timeout == 0.5
    finally:
        hark.tasks.delete(task.id)


def test_bad_or_missing_key_is_an_authentication_error(api_url, monkeypatch):
    monkeypatch.delenv("HARK_API_KEY", raising=False)
    for key in ("not-a-real-key", None):
        with Client(api_url, key) as client, pytest.raises(AuthenticationError) as caught:
            client.tasks.count()
        assert caught.value.status_code == 401 and caught.value.code == "unauthorized"
        assert isinstance(caught.value, HarkError)
    with Client(api_url, "not-a-real-key") as client:
        assert client.health().ok  # public


def test_invalid_input_is_a_validation_error_with_the_servers_body(hark):
    with pytest.raises(ValidationError) as caught:
        hark.diagnostics_sleep(-1)
    error = caught.value
    assert error.status_code == 400 and error.code == "validation_error"
    assert "seconds" in error.details and error.body["details"] == error.details
    assert error.headers["content-type"].startswith("application/json")
    with pytest.raises(ValidationError):
        hark.tasks.page(per_page=5000)


def test_another_owners_task_does_not_exist(hark, api_url, other_key):
    task = hark.diagnostics_sleep(0)
    with Client(api_url, other_key) as bob, pytest.raises(NotFoundError):
        bob.tasks.get(task.id)
    with pytest.raises(NotFoundError):
        hark.tasks.get(str(uuid.uuid4()))


def test_transcript_of_a_task_that_transcribed_nothing(hark):
    task = hark.diagnostics_sleep(0)
    with pytest.raises(HarkError) as caught:
        hark.transcript(task.id)
    assert caught.value.status_code in (400, 409)  # not a transcription, not 404
