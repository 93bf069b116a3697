"""End to end through a real Celery worker: submit, defer, wait, cancel, retry."""

import time

from tests.support import wait_for

SLEEP = "/diagnostics/sleep"


def task_status(client, auth, task_id):
    return client.get(f"/tasks/{task_id}", headers=auth).get_json()


def wait_status(client, auth, task_id, status, timeout=20):
    return wait_for(lambda: (b := task_status(client, auth, task_id))["status"] == status and b,
                    timeout=timeout, message=f"task {task_id} to be {status}")


def test_deferred_task_completes(client, auth, worker):
    response = client.post(SLEEP + "?defer=true", json={"seconds": 0.2}, headers=auth)
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) >= {"task_id"}
    done = wait_status(client, auth, body["task_id"], "completed")
    assert done["result"]["slept"] == 0.2
    assert done["progress"] == 100 and done["attempts"] == 1
    assert done["queue"] == "cpu" and done["device"] == "cpu"
    for stamp in ("created_at", "assigned_at", "started_at", "completed_at"):
        assert done[stamp] is not None
    assert done["created_at"] <= done["assigned_at"] <= done["started_at"] <= done["completed_at"]


def test_sync_request_waits_for_result(client, auth, worker, monkeypatch):
    from app import endpoints

    reads = []
    monkeypatch.setattr(endpoints, "read_task", lambda *a: reads.append(a))
    started = time.monotonic()
    response = client.post(SLEEP, json={"seconds": 0.3}, headers=auth)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "completed" and body["result"]["slept"] == 0.3
    assert body["task_id"] == body["id"]
    assert 0.3 <= elapsed < 5
    assert reads == []  # the completion notify carried the row: no read at all
    assert body == task_status(client, auth, body["id"]) | {"task_id": body["id"]}


def test_sync_request_times_out_into_a_task_id(client, auth, worker):
    response = client.post(SLEEP + "?timeout=0.2", json={"seconds": 2}, headers=auth)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] in ("assigned", "running")
    wait_status(client, auth, body["task_id"], "completed")


def test_failed_task_records_error_and_retry_completes(client, auth, worker):
    body = client.post(SLEEP, json={"seconds": 0, "fail": True}, headers=auth).get_json()
    assert body["status"] == "failed"
    assert body["error"]["type"] == "DiagnosticFailure"
    assert "on purpose" in body["error"]["message"]
    retried = client.post(f"/tasks/{body['id']}/retry", headers=auth)
    assert retried.status_code == 200
    assert retried.get_json()["status"] in ("created", "assigned", "running", "failed")
    # Same input fails again, but it really ran a second time.
    again = wait_status(client, auth, body["id"], "failed")
    # A user retry runs again (attempts 2) without spending the automatic re-run budget.
    assert again["retry_count"] == 0 and again["attempts"] == 2


def test_delete_running_task_cancels_it(client, auth, worker, db):
    task_id = client.post(SLEEP + "?defer=true", json={"seconds": 3}, headers=auth) \
        .get_json()["task_id"]
    wait_status(client, auth, task_id, "running")
    deleted = client.delete(f"/tasks/{task_id}", headers=auth)
    assert deleted.status_code == 200 and deleted.get_json()["status"] == "running"
    assert client.get(f"/tasks/{task_id}", headers=auth).status_code == 404
    time.sleep(4)
    assert client.get(f"/tasks/{task_id}", headers=auth).status_code == 404
    assert client.get("/tasks/count", headers=auth).get_json()["total"] == 0
    assert f"task {task_id} cancelled" in worker.output() or \
        f"{task_id} finished but was deleted" in worker.output()


def test_delete_queued_task_never_runs(client, auth, worker):
    # Occupy both task slots of the session worker, then queue one more and delete it.
    for _ in range(2):
        client.post(SLEEP + "?defer=true", json={"seconds": 1.5}, headers=auth)
    queued = client.post(SLEEP + "?defer=true", json={"seconds": 0}, headers=auth) \
        .get_json()["task_id"]
    assert client.delete(f"/tasks/{queued}", headers=auth).status_code == 200
    time.sleep(3)
    assert client.get(f"/tasks/{queued}", headers=auth).status_code == 404
    assert f"task {queued} started" not in worker.output()


def test_priority_orders_queued_work(client, auth, worker, db):
    # Fill both task slots, then queue low before high: high must take the first free one.
    # The blockers end 1.5 s apart, so the two queued tasks never start at the same time.
    blockers = [client.post(SLEEP + "?defer=true", json={"seconds": seconds}, headers=auth)
                .get_json()["task_id"] for seconds in (1.5, 3.0)]
    wait_for(lambda: all(task_status(client, auth, b)["status"] == "running" for b in blockers),
             message="blockers running")
    low = client.post(SLEEP + "?defer=true", json={"seconds": 0, "priority": 0},
                      headers=auth).get_json()["task_id"]
    high = client.post(SLEEP + "?defer=true", json={"seconds": 0, "priority": 9},
                       headers=auth).get_json()["task_id"]
    low_done = wait_status(client, auth, low, "completed")
    high_done = wait_status(client, auth, high, "completed")
    assert high_done["started_at"] < low_done["started_at"]


def test_counts_match_listing_after_real_work(client, auth, worker):
    for seconds, fail in ((0, False), (0, True), (0.1, False)):
        client.post(SLEEP, json={"seconds": seconds, "fail": fail}, headers=auth)
    counts = client.get("/tasks/count", headers=auth).get_json()
    listed = client.get("/tasks", headers=auth).get_json()["tasks"]
    assert counts["total"] == len(listed) == 3
    assert counts["completed"] == 2 and counts["failed"] == 1


def test_task_events_trace_every_step(client, auth, worker):
    body = client.post(SLEEP, json={"seconds": 1.2}, headers=auth).get_json()
    events = client.get(f"/tasks/{body['id']}/events", headers=auth).get_json()["events"]
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["created", "assigned", "started"] and kinds[-1] == "completed"
    assert "progress" in kinds
    started = events[2]["details"]
    assert started["worker"] == body["worker"] and started["device"] == "cpu"
    assert started["attempt"] == 1
    assert events[1]["details"] == {"queue": "cpu"}
    stamps = [e["at"] for e in events]
    assert stamps == sorted(stamps)

    failed = client.post(SLEEP, json={"seconds": 0, "fail": True}, headers=auth).get_json()
    client.post(f"/tasks/{failed['id']}/retry", headers=auth)
    wait_for(lambda: task_status(client, auth, failed["id"])["attempts"] == 2
             and task_status(client, auth, failed["id"])["status"] == "failed")
    trail = client.get(f"/tasks/{failed['id']}/events", headers=auth).get_json()["events"]
    kinds = [e["type"] for e in trail]
    assert kinds.count("failed") == 2 and "retried" in kinds
    assert trail[kinds.index("failed")]["details"]["type"] == "DiagnosticFailure"


def test_task_events_are_owner_scoped(client, auth, other_key, worker):
    body = client.post(SLEEP, json={"seconds": 0}, headers=auth).get_json()
    response = client.get(f"/tasks/{body['id']}/events", headers={"x-api-key": other_key})
    assert response.status_code == 404
