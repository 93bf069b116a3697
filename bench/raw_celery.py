"""Raw Celery: the floor the round-trip and drain benchmarks compare the platform with.

The platform's own broker settings (``core.celery_config.celery_config``: acks late,
prefetch 1, the same Redis transport options and key prefix) plus a Redis result backend,
and one trivial task on the ``raw`` queue. Start a worker of it with
:func:`start_raw_worker`; call ``noop.delay().get()`` for a round trip.
"""

from __future__ import annotations

import sys
from pathlib import Path

from celery import Celery

from core.celery_config import celery_config
from core.config import Settings
from tests.support import Process, platform_env, wait_for

RAW_QUEUE = "raw"


def make_raw_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    conf = celery_config(settings) | {
        "result_backend": settings.broker_url,
        "task_ignore_result": False,
        "task_default_queue": RAW_QUEUE,
        "beat_schedule": {},
        "result_backend_transport_options": {"global_keyprefix": settings.broker_key_prefix},
        "result_expires": 600,
    }
    app = Celery("raw")
    app.conf.update(conf)
    app.task(name="raw.noop")(noop)
    return app


def noop() -> None:
    """Nothing: the task the raw floor runs."""


def __getattr__(name: str) -> Celery:
    """``bench.raw_celery:app`` for ``celery -A``: built from the environment on first use."""
    if name == "app":
        globals()["app"] = made = make_raw_app()
        return made
    raise AttributeError(name)


def start_raw_worker(env: dict[str, str], log_dir: Path, concurrency: int) -> Process:
    """A plain ``celery worker`` of :data:`app`, same pool kind and size as the platform's."""
    args = [sys.executable, "-m", "celery", "-A", "bench.raw_celery:app", "worker",
            "--queues", RAW_QUEUE, "--concurrency", str(concurrency), "--pool", "prefork",
            "--hostname", "raw@%h", "--loglevel", "INFO"]
    proc = Process(args, platform_env(env), log_dir / "raw-worker.log")
    wait_for(lambda: "ready." in proc.output() or not proc.alive(), timeout=60,
             message="raw worker to start")
    if not proc.alive():
        raise AssertionError("raw worker exited:\n" + proc.output()[-3000:])
    return proc
