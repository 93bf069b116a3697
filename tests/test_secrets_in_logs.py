"""Secrets never reach the logs, and API keys are kept only as hashes.

One flow with every process at DEBUG (the API in-process, a model worker and an events
worker of its own): create a key, use it (both headers, a wrong key, a revoked key), run
tasks, subscribe a webhook, rotate its secret, deliver signed events and a one-off
callback, fail a delivery. Neither the raw API key nor any webhook or callback secret may
appear in anything logged: records caught by caplog, what the platform's own handler
(core.logs) writes, the workers' log files, nor in the broker's messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import threading
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from sqlalchemy import event, select, text

from app import create_app
from core import keys
from core.models import ApiKey
from core.webhook_signing import verify
from tests.conftest import BROKER_URL
from tests.support import start_worker, wait_for


class Receiver:
    """Records the webhook requests it gets; answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()},
                                          body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def platform(settings, settings_env, log_dir, app):
    """An API app and two DEBUG workers on a broker namespace of their own."""
    prefix = f"hark-secrets-{uuid.uuid4().hex[:8]}:"
    env = {**settings_env, "BROKER_KEY_PREFIX": prefix}
    model = start_worker(env, log_dir, name="secrets-model", LOG_LEVEL="DEBUG",
                         WORKER_CONCURRENCY="1")
    events = start_worker(env, log_dir, name="secrets-events", LOG_LEVEL="DEBUG",
                          WORKER_ROLE="events", WORKER_CONCURRENCY="4",
                          WEBHOOK_RETRY_SCHEDULE="0.1")
    api = create_app(replace(settings, broker_key_prefix=prefix))
    api.config["TESTING"] = True
    yield api, [model, events], prefix
    model.stop()
    events.stop()
    api.extensions["hark"]["waiter"].close()
    api.extensions["hark"]["db"].dispose()
    broker = redis.Redis.from_url(BROKER_URL)
    for key in broker.scan_iter(match=f"{prefix}*", count=1000):
        broker.delete(key)


# SQLAlchemy's statement log (INFO: statements and parameters, DEBUG: every row read) is
# a dump of the data by design, off unless an operator configures that logger by hand:
# LOG_LEVEL does not turn it on (test_log_level_does_not_turn_on_the_sql_log).
SQL_ECHO = "sqlalchemy.engine"


@pytest.fixture()
def all_logs(caplog):
    """caplog at DEBUG for every logger (but the SQL echo), and the platform's own
    handler's output."""
    caplog.set_level(logging.WARNING, logger=SQL_ECHO)  # its warnings and errors still count
    for name in list(logging.root.manager.loggerDict):
        if name != SQL_ECHO and not name.startswith(SQL_ECHO + "."):
            caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG)  # last: the capturing handler takes DEBUG
    formatted = io.StringIO()
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "_hark", False)]
    assert handlers, "core.logs.configure_logging installed no handler"
    previous = [h.setStream(formatted) for h in handlers]
    yield caplog, formatted
    for handler, stream in zip(handlers, previous, strict=True):
        handler.setStream(stream)


def broker_contents(prefix: str) -> str:
    broker = redis.Redis.from_url(BROKER_URL)
    parts = []
    for key in broker.scan_iter(match=f"{prefix}*", count=1000):
        kind = broker.type(key)
        if kind == b"list":
            parts.extend(broker.lrange(key, 0, -1))
        elif kind == b"hash":
            parts.extend(v for kv in broker.hgetall(key).items() for v in kv)
        elif kind == b"string":
            parts.append(broker.get(key))
        elif kind == b"zset":
            parts.extend(broker.zrange(key, 0, -1))
        elif kind == b"set":
            parts.extend(broker.smembers(key))
    text_parts = []
    for part in parts:
        raw = part.decode("utf-8", "replace")
        text_parts.append(raw)
        try:  # kombu base64-encodes message bodies
            body = json.loads(raw).get("body")
            text_parts.append(base64.b64decode(body).decode("utf-8", "replace"))
        except (ValueError, AttributeError, TypeError):
            pass
    return "\n".join(text_parts)


def finished(client, auth, task_id: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (b := client.get(f"/tasks/{task_id}", headers=auth).get_json())
                    ["status"] in ("completed", "failed") and b, timeout=timeout,
                    message=f"task {task_id} to finish")


def test_no_secret_is_ever_logged(platform, all_logs, db):
    api, workers, prefix = platform
    caplog, formatted = all_logs
    client = api.test_client()
    receiver = Receiver()
    try:
        # A key, created with the CLI as operators do; then a second one, revoked.
        created = api.test_cli_runner().invoke(args=["keys", "create", "--name", "carol"])
        assert created.exit_code == 0, created.output
        raw = created.output.strip()
        revoked_raw = api.test_cli_runner().invoke(
            args=["keys", "create", "--name", "old"]).output.strip()
        with db.session() as session:
            old = session.scalar(select(ApiKey).where(ApiKey.name == "old"))
        assert api.test_cli_runner().invoke(args=["keys", "revoke", str(old.id)]).exit_code == 0
        auth = {"x-api-key": raw}
        assert client.get("/me", headers=auth).status_code == 200
        assert client.get("/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
        for wrong in (raw[:-1] + ("A" if raw[-1] != "A" else "B"), revoked_raw, raw + " x"):
            assert client.get("/tasks/count", headers={"x-api-key": wrong}).status_code == 401
        assert client.post("/diagnostics/sleep", json={"seconds": 0},
                           headers={"Authorization": f"Bearer {revoked_raw}"}).status_code == 401

        # A subscription, its secret rotated (the old one keeps signing for a while).
        hook = client.post("/webhooks", headers=auth, json={"url": receiver.url("/hook")})
        assert hook.status_code == 201
        hook = hook.get_json()
        rotated = client.post(f"/webhooks/{hook['id']}/rotate-secret", headers=auth,
                              json={"grace_seconds": 3600}).get_json()
        dead = client.post("/webhooks", headers=auth, json={"url": "http://127.0.0.1:1/dead"})
        assert dead.status_code == 201
        callback = client.get("/webhooks/callback-secret", headers=auth).get_json()
        secrets = [hook["secret"], rotated["secret"], dead.get_json()["secret"],
                   callback["secret"]]

        # Tasks: one that completes, one that fails with a one-off callback.
        done = client.post("/diagnostics/sleep?timeout=60", headers=auth,
                           json={"seconds": 0.1}).get_json()
        assert done["status"] == "completed", done
        failed = client.post("/analyze?defer=true", headers=auth, json={
            "media": {"base64": base64.b64encode(b"\x00\x01 not audio" * 64).decode(),
                      "filename": "x.wav"},
            "webhook": receiver.url("/callback")}).get_json()
        assert finished(client, auth, failed["task_id"])["status"] == "failed"
        wait_for(lambda: len(receiver.requests) >= 4, timeout=60,
                 message="webhook deliveries")  # started+completed, started, failed
        signed = [r for r in receiver.requests if r[0].get("webhook-signature")]
        assert len(signed) == len(receiver.requests)
        headers, body = receiver.requests[-1]
        assert any(verify(s, headers, body) for s in secrets)  # the secrets were used
        wait_for(lambda: client.get(f"/webhooks/{dead.get_json()['id']}/deliveries",
                                    headers=auth).get_json()["deliveries"],
                 timeout=30, message="the failing delivery's attempt")
    finally:
        receiver.close()
    for worker in workers:
        assert worker.alive()

    logged = {
        "caplog records": "\n".join(
            f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''} {r.args!r}"
            for r in caplog.records),
        "caplog text": caplog.text,
        "platform handler": formatted.getvalue(),
        **{f"worker log {w.log_path.name}": w.output() for w in workers},
        "broker messages": broker_contents(prefix),
    }
    assert "DEBUG" in logged[f"worker log {workers[0].log_path.name}"].upper()  # DEBUG on
    assert len(caplog.records) > 0
    for where, content in logged.items():
        for name, secret in [("API key", raw), ("revoked API key", revoked_raw),
                             *(("webhook secret", s) for s in secrets),
                             *(("webhook secret body", s.removeprefix("whsec_"))
                               for s in secrets)]:
            assert secret not in content, f"{name} found in {where}"


def test_log_level_does_not_turn_on_the_sql_log(monkeypatch):
    from core.logs import configure_logging

    root = logging.getLogger()
    level = root.level
    try:
        configure_logging(level="DEBUG")
        assert root.isEnabledFor(logging.DEBUG)
        assert not logging.getLogger(SQL_ECHO + ".Engine").isEnabledFor(logging.INFO)
    finally:
        configure_logging()
        root.setLevel(level)


def test_keys_are_stored_as_hashes_only(app, client, db, api_key):
    assert client.get("/me", headers={"x-api-key": api_key}).status_code == 200
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    with db.session() as session:
        row = session.scalar(select(ApiKey))
        assert row.key_hash == digest and row.prefix == api_key[:10]
        # The raw key is nowhere in the database, in any column of any table.
        tables = session.execute(text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")).scalars().all()
        for table in tables:
            found = session.execute(text(
                f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE :raw'),
                {"raw": f"%{api_key[10:]}%"}).scalar()
            assert found == 0, table
    # The in-process key cache is keyed by the hash, never by the raw key.
    cache = app.extensions["hark"]["principals"]
    cache.put(api_key, keys.Principal("1", "alice", "alice", False))
    assert api_key not in repr(cache._entries) and digest in cache._entries


def test_keys_are_looked_up_by_hash_and_compared_in_constant_time(app, client, db, api_key,
                                                                  monkeypatch):
    """What reaches the database is the SHA-256 of the key (the raw key is never a query
    parameter), and the stored hash is compared with hmac.compare_digest."""
    app.extensions["hark"]["principals"].clear()
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(f"{statement} {parameters!r}")

    compared = []
    real_compare = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.get("/me", headers={"x-api-key": api_key}).status_code == 200
        assert client.get("/me", headers={"x-api-key": api_key + "x"}).status_code == 401
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    assert any(digest in s for s in statements)
    assert not any(api_key in s for s in statements)
    assert compared == [(digest, digest)]  # the found row; the wrong key finds none


def test_database_errors_do_not_log_statement_parameters(client, auth, db, all_logs):
    caplog, formatted = all_logs
    with db.transaction() as session:  # make the next webhook INSERT fail in PostgreSQL
        session.execute(text("ALTER TABLE webhooks ADD CONSTRAINT no_rows CHECK (false) "
                             "NOT VALID"))
    try:
        response = client.post("/webhooks", headers=auth, json={"url": "http://127.0.0.1:9/"})
    finally:
        with db.transaction() as session:
            session.execute(text("ALTER TABLE webhooks DROP CONSTRAINT no_rows"))
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_error", "message": "internal server error"}
    assert "whsec_" not in caplog.text + formatted.getvalue()


def test_webhook_urls_are_logged_without_their_path():
    from workers.webhook_http import _origin

    assert _origin("https://hooks.slack.com/services/T0/B0/s3cr3t?x=1") == \
        "https://hooks.slack.com"
    assert _origin("http://10.0.0.1:8080/hook/token") == "http://10.0.0.1:8080"
    assert _origin("not a url") == "<invalid URL>"
