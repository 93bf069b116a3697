"""Helpers for tests that run the real platform: workers and API servers as processes."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "13"))
# Speed over durability: a test server's data is thrown away anyway.
FAST_PG = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_private_pg = None  # this process's own PostgreSQL, when TEST_PG_ADMIN_URL names none


def pg_admin_url(durable: bool = False) -> str:
    """The admin URL of the PostgreSQL (with pgvector) that tests and benchmarks use.

    ``TEST_PG_ADMIN_URL`` if set; else a private PostgreSQL 18 (:mod:`core.embedded`) on
    a free port, data in a temporary folder, started on the first call of this process
    and stopped by :func:`stop_private_pg` (or at exit). Unless ``durable`` (benchmarks),
    it runs with ``fsync=off``.
    """
    global _private_pg
    url = os.environ.get("TEST_PG_ADMIN_URL")
    if url:
        return url
    if _private_pg is None:
        from core.embedded import EmbeddedPostgres

        root = Path(tempfile.mkdtemp(prefix="hark-test-pg-"))
        server = EmbeddedPostgres(root, free_port(), settings=None if durable else FAST_PG)
        try:
            server.start()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        _private_pg = server
        atexit.register(stop_private_pg)
    return _private_pg.url()


def stop_private_pg() -> None:
    """Stop and remove this process's private PostgreSQL, if it started one."""
    global _private_pg
    server, _private_pg = _private_pg, None
    if server is not None:
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)


def database_url_of(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def fresh_database(prefix: str = "hark_tmp") -> Iterator[str]:
    """An empty database on the test server, dropped afterwards; yields its URL."""
    import psycopg

    admin = pg_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url_of(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling through transient errors
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message} (last error: {last_error})")


class Process:
    """A platform process (worker, API server) started for a test, stopped after it."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def platform_env(settings_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(settings_env)
    env.update({k: str(v) for k, v in extra.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_worker(settings_env: dict[str, str], log_dir: Path, name: str = "w1",
                 ready_timeout: float = 60.0, **extra: str) -> Process:
    """Start ``python -m workers.start`` and wait until it consumes its queues (in the
    default pool of its role unless ``extra`` says otherwise: a model worker batches
    ``WORKER_BATCH_TASKS`` tasks in one process)."""
    env = platform_env(settings_env, WORKER_NAME=f"{name}@%h", **extra)
    if not extra.get("WORKER_CONCURRENCY"):  # not inherited from the test's environment
        env.pop("WORKER_CONCURRENCY", None)
    proc = Process([sys.executable, "-m", "workers.start"], env, log_dir / f"worker-{name}.log")
    wait_for(lambda: "ready." in proc.output() or not proc.alive(), timeout=ready_timeout,
             message=f"worker {name} to start")
    if not proc.alive():
        raise AssertionError("worker exited:\n" + proc.output()[-3000:])
    return proc


def start_embed_worker(settings_env: dict[str, str], log_dir: Path, name: str = "embed",
                       **extra: str) -> Process:
    """Start an ``embed`` worker (``WORKER_ROLE=embed``: queue ``embed``, the embedding
    model loaded at start), as ``make run`` and the deployments do beside model workers."""
    return start_worker(settings_env, log_dir, name=name, WORKER_ROLE="embed",
                        WORKER_CONCURRENCY="1", **extra)


def start_api(settings_env: dict[str, str], log_dir: Path, **extra: str) -> tuple[Process, str]:
    """Start the API under gunicorn, as in production; returns it and its base URL."""
    port = free_port()
    env = platform_env(settings_env, PORT=str(port), HOST="127.0.0.1", **extra)
    env.setdefault("WEB_CONCURRENCY", "1")
    args = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
    proc = Process(args, env, log_dir / f"api-{port}.log")
    base_url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(base_url + "/health", timeout=1).status_code in (200, 503)
             or not proc.alive(), timeout=30, message="API to start")
    if not proc.alive():
        raise AssertionError("API exited:\n" + proc.output()[-3000:])
    return proc, base_url


def store_blob(session, owner: str, body: bytes, filename: str | None = None,
               content_type: str | None = None) -> uuid.UUID:
    """Store ``body`` as a media blob in ``session``'s transaction; returns its id."""
    import io

    from core import media_store

    upload = media_store.Upload(file=io.BytesIO(body), owner=owner, size=len(body),
                                filename=filename, content_type=content_type)
    media_store.store(session.connection(), upload)
    return upload.blob_id
