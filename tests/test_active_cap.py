"""MAX_ACTIVE_TASKS: a key with that many unfinished tasks gets 429 until some finish."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import update

from core.models import Task
from core.status import TaskStatus

SLEEP = "/diagnostics/sleep?defer=true"
PARKED = {"seconds": 0, "queue": "cap-test-nobody-consumes"}


@pytest.fixture()
def capped(app, monkeypatch):
    settings = app.config["HARK"]
    monkeypatch.setitem(app.config, "HARK", dataclasses.replace(settings, max_active_tasks=2))
    return app.test_client()


def test_third_active_task_is_refused_with_429(capped, auth, other_key, db):
    for _ in range(2):
        assert capped.post(SLEEP, json=PARKED, headers=auth).status_code == 202
    refused = capped.post(SLEEP, json=PARKED, headers=auth)
    assert refused.status_code == 429
    assert refused.get_json() == {
        "error": "too_many_active_tasks", "details": {"limit": 2},
        "message": "this key already has 2 unfinished tasks; wait for some to finish"}
    # Nothing of the refused submission is left, and other keys are not affected.
    assert capped.get("/tasks/count", headers=auth).get_json()["total"] == 2
    other = {"Authorization": f"Bearer {other_key}"}
    assert capped.post(SLEEP, json=PARKED, headers=other).status_code == 202


def test_finished_tasks_free_the_slots(capped, auth, db):
    ids = [capped.post(SLEEP, json=PARKED, headers=auth).get_json()["task_id"]
           for _ in range(2)]
    assert capped.post(SLEEP, json=PARKED, headers=auth).status_code == 429
    with db.transaction() as session:
        session.execute(update(Task).where(Task.id == ids[0])
                        .values(status=TaskStatus.COMPLETED.value))
    assert capped.post(SLEEP, json=PARKED, headers=auth).status_code == 202


def test_no_cap_by_default(app, auth):
    client = app.test_client()
    assert app.config["HARK"].max_active_tasks == 0
    for _ in range(5):
        assert client.post(SLEEP, json=PARKED, headers=auth).status_code == 202
