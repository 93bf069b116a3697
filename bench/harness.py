"""A throwaway platform for benchmarks: its own PostgreSQL database, Redis namespace,
real workers as subprocesses, and the Flask app in-process (or under gunicorn)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from tests.support import Process, platform_env, start_api, start_worker, wait_for
from tests.support import pg_admin_url as shared_pg_admin_url

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


@dataclass
class Platform:
    env: dict[str, str]
    log_dir: Path
    app: object = None
    api_key: str = ""
    processes: list[Process] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def worker(self, name: str = "bench", ready_timeout: float = 60.0, **extra: str) -> Process:
        proc = start_worker(self.env, self.log_dir, name=name, ready_timeout=ready_timeout,
                            **extra)
        self.processes.append(proc)
        return proc

    def events_worker(self, name: str = "events", **extra: str) -> Process:
        """A ``WORKER_ROLE=events`` worker: webhooks and maintenance (the sweeps)."""
        return self.worker(name, WORKER_ROLE="events", WORKER_CONCURRENCY="4", **extra)

    def beat(self) -> Process:
        """``celery beat``, as the Procfile runs it: schedules sweeps every SWEEP_INTERVAL."""
        env = platform_env(self.env)
        proc = Process([sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat",
                        "--loglevel", "INFO"], env, self.log_dir / "beat.log")
        self.processes.append(proc)
        wait_for(lambda: "beat: Starting" in proc.output() or not proc.alive(), timeout=60,
                 message="beat to start")
        if not proc.alive():
            raise AssertionError("beat exited:\n" + proc.output()[-3000:])
        return proc

    def api(self, **extra: str) -> str:
        proc, url = start_api(self.env, self.log_dir, **extra)
        self.processes.append(proc)
        return url


@contextmanager
def platform(log_dir: Path, *, pg_admin_url: str | None = None, redis_url: str | None = None,
             **env: str) -> Iterator[Platform]:
    """Create a database and a Redis namespace, migrate, build the app; clean up after.

    ``pg_admin_url`` and ``redis_url`` point it at other servers than the shared ones
    (fault scripts restart private instances); by default ``TEST_PG_ADMIN_URL`` (else a
    private PostgreSQL 18, see :func:`tests.support.pg_admin_url`) and
    ``BENCH_REDIS_URL``.
    """
    from app import create_app
    from app.commands import upgrade_database
    from core.config import Settings
    from core.keys import create_key

    admin_url = pg_admin_url or shared_pg_admin_url(durable=True)
    broker_url = redis_url or REDIS_URL
    name = f"hark_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = admin_url.rsplit("/", 1)[0] + "/" + name
    prefix = f"hark-bench-{uuid.uuid4().hex[:8]}:"
    (log_dir / "data").mkdir(parents=True, exist_ok=True)
    settings_env = {
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "BROKER_KEY_PREFIX": prefix,
        "DATA_DIR": str(log_dir / "data"),
        "DIAGNOSTICS": "1",
        "KEY_CACHE_SECONDS": "60",
        "MODELS_DIR": os.environ.get("MODELS_DIR", str(Path("var/models").resolve())),
        **env,
    }
    saved = {k: os.environ.get(k) for k in settings_env}
    os.environ.update(settings_env)
    bench = Platform(env=settings_env, log_dir=log_dir)
    try:
        upgrade_database(database_url)
        bench.app = create_app(Settings.from_env())
        with bench.app.extensions["hark"]["db"].transaction() as session:
            _, bench.api_key = create_key(session, name="bench", owner="bench")
        yield bench
    finally:
        for proc in bench.processes:
            proc.stop()
        if bench.app is not None:
            bench.app.extensions["hark"]["waiter"].close()
            bench.app.extensions["hark"]["db"].dispose()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            client = redis.Redis.from_url(broker_url)
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
        except redis.RedisError as exc:  # a fault script's private Redis already stopped
            print(f"harness: Redis keys under {prefix} not removed: {exc}")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def post_analyze(bench: Platform, path: Path, fields: dict,
                 barrier: threading.Barrier | None = None, timeout: float = 600) -> str:
    """POST ``path`` to ``/analyze`` (sync, waiting up to ``timeout``); its transcript."""
    client = bench.app.test_client()
    with open(path, "rb") as fh:
        data = {"file": (fh, path.name), **fields}
        if barrier is not None:
            barrier.wait()
        response = client.post(f"/analyze?timeout={timeout:g}", headers=bench.headers,
                               data=data)
    body = response.get_json()
    if body.get("status") != "completed":
        raise RuntimeError(f"Hark task did not complete: {body}")
    return body["result"]["text"]


def post_together(bench: Platform, paths: list[Path], fields: dict,
                  timeout: float = 600) -> tuple[float, list[str]]:
    """All files posted at once (a barrier releases the requests together): seconds from
    the release until the last is done, and the transcripts in order."""
    barrier = threading.Barrier(len(paths) + 1)
    with ThreadPoolExecutor(len(paths)) as pool:
        futures = [pool.submit(post_analyze, bench, p, fields, barrier, timeout)
                   for p in paths]
        barrier.wait()
        started = time.perf_counter()
        texts = [f.result() for f in futures]
    return time.perf_counter() - started, texts


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median": statistics.median(values),
            "p99": percentile(values, 99), "min": min(values), "max": max(values)}


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def table(rows: list[list[object]], headers: list[str]) -> str:
    cells = [headers] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r]
                         for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
