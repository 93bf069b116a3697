"""Operators: GET /workers (admin) and Prometheus /metrics, fed by real workers."""

from tests.support import wait_for

SLEEP = "/diagnostics/sleep"


def test_workers_needs_admin(client, auth):
    assert client.get("/workers", headers=auth).status_code == 403
    assert client.get("/workers").status_code == 401


def test_workers_lists_processes_and_running_task(client, auth, admin_key, worker):
    admin = {"x-api-key": admin_key}
    task_id = client.post(SLEEP + "?defer=true", json={"seconds": 2}, headers=auth) \
        .get_json()["task_id"]

    def busy():  # the worker's one (batching) process announced, running our task
        listed = client.get("/workers", headers=admin).get_json()["workers"]
        mine = [w for w in listed if w["node"].startswith("session@")]
        return any(w["current_task"] == task_id for w in mine) and mine

    mine = wait_for(busy, timeout=10, message="the worker to report the running task")
    assert len(mine) == 1  # one process runs the session worker's two task slots
    for process in mine:
        assert process["role"] == "model" and process["device"] == "cpu"
        assert process["queues"] == ["cpu", "maintenance"]
        assert process["pid"] > 0 and process["last_seen"]


def test_metrics_needs_admin_and_reports_the_platform(client, auth, admin_key, worker):
    client.post(SLEEP, json={"seconds": 0}, headers=auth)
    client.post(SLEEP, json={"seconds": 0, "fail": True}, headers=auth)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=auth).status_code == 403

    def scrape():
        text = client.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"}) \
            .get_data(as_text=True)
        # Each worker process reports its own counts on its next beat: wait for both outcomes.
        return ('hark_worker_tasks{outcome="failed"' in text
                and 'hark_worker_tasks{outcome="completed"' in text and text)

    text = wait_for(scrape, timeout=15, message="worker stats to reach /metrics")
    assert 'hark_tasks{status="completed"} 1.0' in text
    assert 'hark_tasks{status="failed"} 1.0' in text
    assert 'hark_queue_depth{queue="cpu"}' in text
    assert 'hark_workers_online{device="cpu",role="model"}' in text
    assert 'hark_http_request_duration_seconds_bucket{endpoint="/diagnostics/sleep"' in text
    assert 'hark_worker_tasks{outcome="completed"' in text


def test_worker_logs_are_json_lines_tagged_with_task_and_owner(client, auth, worker):
    import json

    task = client.post(SLEEP, json={"seconds": 0.1}, headers=auth).get_json()
    wait_for(lambda: f"task {task['id']} completed in" in worker.output(), timeout=10)
    lines = [json.loads(line) for line in worker.output().splitlines()
             if line.startswith("{")]
    about = [e for e in lines if task["id"] in e["message"]]
    # started, completed: Celery's "received"/"succeeded" repeat them, shown at DEBUG only
    assert [e["message"].split()[2] for e in about] == ["started:", "completed"]
    assert all(e["task_id"] == task["id"] and e["owner"] == "alice" for e in about)
    assert {"ts", "level", "logger", "message", "pid"} <= set(lines[-1])


def test_worker_publishes_task_events_for_flower(app, client, auth, worker):
    """Celery's task events (Flower's task view) still arrive, batched
    (workers.celery_events): received, started and succeeded for a task."""
    import threading

    celery = app.extensions["hark"]["celery"]
    seen: list[dict] = []
    ready = threading.Event()
    with celery.connection_for_read() as conn:
        receiver = celery.events.Receiver(conn, handlers={"*": seen.append})
        receiver.on_consume_ready = lambda *_args, **_kwargs: ready.set()
        thread = threading.Thread(target=receiver.capture, kwargs={"wakeup": False},
                                  daemon=True)
        thread.start()
        try:
            wait_for(ready.is_set, timeout=10, message="the event receiver")
            task_id = client.post(SLEEP + "?defer=true", json={"seconds": 0},
                                  headers=auth).get_json()["task_id"]

            def kinds():
                got = [e["type"] for e in list(seen) if e.get("uuid") == task_id]
                return "task-succeeded" in got and got

            got = wait_for(kinds, timeout=10, message="the task's Celery events")
        finally:
            receiver.should_stop = True
            thread.join(5)
    assert {"task-received", "task-started", "task-succeeded"} <= set(got)
