"""The /tasks contract (Aana's shapes) on tasks created directly in the database."""

import uuid

import pytest

from core import lifecycle

STATUSES = ["created", "assigned", "completed", "running", "failed", "not_finished"]


def make_tasks(db, owner, statuses):
    ids = []
    with db.transaction() as s:
        for status in statuses:
            task = lifecycle.create_task(s, owner=owner, endpoint="/analyze", data={"n": len(ids)})
            s.flush()
            task.status = status
            ids.append(task.id)
    return ids


def test_count_shape_and_values(client, auth, db):
    make_tasks(db, "alice", ["created", "completed", "completed", "failed", "not_finished"])
    make_tasks(db, "bob", ["completed"] * 3)
    body = client.get("/tasks/count", headers=auth).get_json()
    assert body == {"created": 1, "assigned": 0, "completed": 2, "running": 0, "failed": 1,
                    "not_finished": 1, "total": 5}


def test_counts_follow_status_changes_and_deletes(client, auth, db):
    ids = make_tasks(db, "alice", ["created"] * 4)
    with db.transaction() as s:
        lifecycle.mark_assigned(s, ids[0], "cpu")
        lifecycle.claim(s, ids[1], worker="w", device="cpu")
        lifecycle.delete_task(s, ids[2])
    body = client.get("/tasks/count", headers=auth).get_json()
    assert (body["created"], body["assigned"], body["running"], body["total"]) == (1, 1, 1, 3)
    listed = client.get("/tasks", headers=auth).get_json()["tasks"]
    for status in STATUSES:
        assert body[status] == sum(t["status"] == status for t in listed)


def test_list_newest_first_with_pages(client, auth, db):
    ids = make_tasks(db, "alice", ["completed"] * 5)
    body = client.get("/tasks?per_page=2&page=1", headers=auth).get_json()
    assert [t["id"] for t in body["tasks"]] == [str(ids[4]), str(ids[3])]
    page3 = client.get("/tasks?per_page=2&page=3", headers=auth).get_json()["tasks"]
    assert [t["id"] for t in page3] == [str(ids[0])]
    task = body["tasks"][0]
    for field in ("id", "endpoint", "data", "status", "result", "progress", "created_at"):
        assert field in task
    assert task["created_at"].endswith("+00:00")


def test_list_defaults_and_status_filter(client, auth, db):
    make_tasks(db, "alice", ["failed", "completed", "failed"] + ["created"] * 100)
    body = client.get("/tasks", headers=auth).get_json()
    assert len(body["tasks"]) == 100
    failed = client.get("/tasks?status=failed", headers=auth).get_json()["tasks"]
    assert len(failed) == 2 and {t["status"] for t in failed} == {"failed"}


def test_cursor_paging_walks_everything_once(client, auth, db):
    ids = make_tasks(db, "alice", ["completed"] * 7)
    seen, cursor = [], None
    while True:
        url = "/tasks?per_page=3" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=auth).get_json()
        seen += [t["id"] for t in body["tasks"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [str(i) for i in reversed(ids)]


@pytest.mark.parametrize("query", ["page=0", "page=abc", "per_page=0", "per_page=5000",
                                   "status=bogus", "cursor=!!", "unknown=1"])
def test_bad_list_parameters_are_400(client, auth, query):
    response = client.get(f"/tasks?{query}", headers=auth)
    assert response.status_code == 400
    assert response.get_json()["error"] == "validation_error"


def test_get_and_404(client, auth, db):
    (task_id,) = make_tasks(db, "alice", ["completed"])
    body = client.get(f"/tasks/{task_id}", headers=auth).get_json()
    assert body["id"] == str(task_id) and body["endpoint"] == "/analyze"
    missing = client.get(f"/tasks/{uuid.uuid4()}", headers=auth)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert client.get("/tasks/not-a-uuid", headers=auth).status_code == 404


def test_retry_conflict_for_unfinished_or_completed(client, auth, db):
    done, running = make_tasks(db, "alice", ["completed", "running"])
    for task_id in (done, running):
        response = client.post(f"/tasks/{task_id}/retry", headers=auth)
        assert response.status_code == 409
        assert response.get_json()["error"] == "conflict"


def test_owner_isolation(client, auth, other_key, db):
    (mine,) = make_tasks(db, "alice", ["failed"])
    theirs = {"x-api-key": other_key}
    assert client.get(f"/tasks/{mine}", headers=theirs).status_code == 404
    assert client.delete(f"/tasks/{mine}", headers=theirs).status_code == 404
    assert client.post(f"/tasks/{mine}/retry", headers=theirs).status_code == 404
    assert client.get("/tasks", headers=theirs).get_json()["tasks"] == []
    assert client.get("/tasks/count", headers=theirs).get_json()["total"] == 0
    assert client.get(f"/tasks/{mine}", headers=auth).status_code == 200
