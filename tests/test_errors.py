"""One JSON error shape; bad input is a 4xx naming the problem; outages are 503."""

from dataclasses import replace

import pytest

from app import create_app


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) >= {"error", "message"}
    assert "Traceback" not in response.get_data(as_text=True)
    if code:
        assert body["error"] == code
    return body


def test_malformed_json(client, auth):
    response = client.post("/diagnostics/sleep", data="{nope", headers=auth,
                           content_type="application/json")
    assert "malformed JSON" in assert_error(response, 400, "invalid_json")["message"]


def test_json_must_be_an_object(client, auth):
    assert_error(client.post("/diagnostics/sleep", json=[1, 2], headers=auth), 400,
                 "invalid_json")


@pytest.mark.parametrize("body,field", [
    ({"seconds": "1"}, "seconds"),
    ({"seconds": True}, "seconds"),
    ({"seconds": -1}, "seconds"),
    ({"seconds": 1, "fail": "yes"}, "fail"),
    ({"seconds": 1, "priority": 11}, "priority"),
    ({"seconds": 1, "device": "tpu"}, "device"),
    ({"seconds": 1, "queue": "bad queue!"}, "queue"),
    ({"seconds": 1, "colour": "red"}, "colour"),
    ({}, "seconds"),
])
def test_wrong_types_unknown_and_missing_fields(client, auth, body, field):
    error = assert_error(client.post("/diagnostics/sleep", json=body, headers=auth), 400,
                         "validation_error")
    assert field in error["details"] and field in error["message"]


def test_wrong_content_type(client, auth):
    response = client.post("/diagnostics/sleep", data="seconds=1", headers=auth,
                           content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


def test_oversize_body_is_413(settings, api_key):
    app = create_app(replace(settings, max_request_bytes=1024))
    response = app.test_client().post("/diagnostics/sleep", data="x" * 5000,
                                      content_type="application/json",
                                      headers={"x-api-key": api_key})
    assert_error(response, 413, "request_entity_too_large")


def test_bad_query_flags(client, auth):
    response = client.post("/diagnostics/sleep?defer=maybe", json={"seconds": 0}, headers=auth)
    assert_error(response, 400, "validation_error")


def test_unknown_route_and_method(client, auth):
    assert_error(client.get("/nope", headers=auth), 404, "not_found")
    response = client.put("/tasks/count", headers=auth)
    assert_error(response, 405, "method_not_allowed")


def test_database_down_is_503(settings, api_key):
    app = create_app(replace(settings, database_url="postgresql://postgres@127.0.0.1:1/x"))
    client = app.test_client()
    body = assert_error(client.get("/tasks/count", headers={"x-api-key": api_key}), 503,
                        "database_unavailable")
    assert "database" in body["message"]
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["database"]["ok"] is False
    assert health.headers["Retry-After"]


def test_broker_down_is_503_and_leaves_no_task(settings, api_key, client, auth):
    app = create_app(replace(settings, broker_url="redis://127.0.0.1:1/0"))
    down = app.test_client()
    response = down.post("/diagnostics/sleep?defer=true", json={"seconds": 0},
                         headers={"x-api-key": api_key})
    assert_error(response, 503, "broker_unavailable")
    assert response.headers["Retry-After"]
    assert client.get("/tasks/count", headers=auth).get_json()["total"] == 0
    assert down.get("/health").get_json()["broker"]["ok"] is False


def test_api_recovers_when_database_returns(settings, api_key, app, db):
    """A dropped connection pool is a 503 once, then the API serves again by itself."""
    from sqlalchemy import text

    client = app.test_client()
    headers = {"x-api-key": api_key}
    assert client.get("/tasks/count", headers=headers).status_code == 200
    with db.engine.connect() as conn:  # kill every connection of this database
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        conn.commit()
    statuses = [client.get("/tasks/count", headers=headers).status_code for _ in range(3)]
    assert statuses[-1] == 200 and set(statuses) <= {200, 503}


def test_booleans_in_json_bodies_are_true_or_false_only(client, auth):
    for value in (0, 1, "true"):
        response = client.post("/diagnostics/sleep?defer=true", headers=auth,
                               json={"seconds": 0, "fail": value})
        assert response.status_code == 400, value
        assert "fail" in response.get_json()["details"]
