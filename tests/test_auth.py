"""API keys: required everywhere but /health, stored hashed, CLI-created, bootstrapped."""

import hashlib

from sqlalchemy import select, update

from core.keys import hash_key
from core.models import ApiKey, utcnow


def test_health_is_public(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": {"ok": True},
                                   "broker": {"ok": True}}


def test_missing_and_invalid_keys_are_401(client):
    for headers in ({}, {"x-api-key": "hk_wrong"}, {"x-api-key": ""}):
        response = client.get("/tasks/count", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"] == "unauthorized"
    assert client.post("/diagnostics/sleep", json={"seconds": 0}).status_code == 401


def test_bearer_header_is_accepted(client, api_key):
    response = client.get("/tasks/count", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200


def test_keys_are_stored_hashed(db, api_key):
    with db.session() as session:
        stored = session.scalars(select(ApiKey)).all()
    assert stored and all(api_key not in (k.key_hash, k.prefix, k.name) for k in stored)
    assert hashlib.sha256(api_key.encode()).hexdigest() in {k.key_hash for k in stored}


def test_cli_creates_a_working_key(app, client):
    result = app.test_cli_runner().invoke(args=["keys", "create", "--name", "cli-user"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip()
    assert raw.startswith("hk_")
    assert client.get("/tasks/count", headers={"x-api-key": raw}).status_code == 200
    listing = app.test_cli_runner().invoke(args=["keys", "list"]).output
    assert "cli-user" in listing and raw not in listing


def test_cli_admin_flag_and_revoke(app, client, db):
    raw = app.test_cli_runner().invoke(
        args=["keys", "create", "--name", "ops", "--admin"]).output.strip()
    with db.session() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.name == "ops"))
    assert key.is_admin
    result = app.test_cli_runner().invoke(args=["keys", "revoke", str(key.id)])
    assert result.exit_code == 0
    assert client.get("/tasks/count", headers={"x-api-key": raw}).status_code == 401


def test_bootstrap_key_is_ensured_at_start(settings, db):
    from dataclasses import replace

    from app import create_app

    raw = "hk_bootstrap_for_tests_0123456789"
    for _ in range(2):  # idempotent
        create_app(replace(settings, api_bootstrap_key=raw))
    with db.session() as session:
        keys = session.scalars(select(ApiKey).where(ApiKey.is_admin.is_(True))).all()
    assert len(keys) == 1 and keys[0].key_hash == hashlib.sha256(raw.encode()).hexdigest()


def test_a_revoked_bootstrap_key_stays_revoked_after_a_restart(settings, db):
    from dataclasses import replace

    from app import create_app

    raw = "hk_bootstrap_revoked_0123456789"
    create_app(replace(settings, api_bootstrap_key=raw))
    with db.transaction() as session:
        session.execute(update(ApiKey).where(ApiKey.key_hash == hash_key(raw))
                        .values(revoked_at=utcnow()))
    restarted = create_app(replace(settings, api_bootstrap_key=raw, key_cache_seconds=0))
    assert restarted.test_client().get("/me", headers={"x-api-key": raw}).status_code == 401
    with db.session() as session:
        assert session.scalar(select(ApiKey.revoked_at)
                              .where(ApiKey.key_hash == hash_key(raw))) is not None


def test_me_and_models(client, api_key, admin_key):
    me = client.get("/me", headers={"x-api-key": api_key}).get_json()
    assert me["owner"] == "alice" and me["admin"] is False
    assert me["limits"]["max_request_mb"] == 200
    assert client.get("/me", headers={"x-api-key": admin_key}).get_json()["admin"] is True
    models = client.get("/models", headers={"x-api-key": api_key}).get_json()
    assert {"tiny.en", "base"} <= set(models["models"]) and models["default"] == "tiny.en"
    assert client.get("/models").status_code == 401
