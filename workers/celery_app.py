"""The worker's Celery app: ``celery -A workers.celery_app ...`` (workers and beat).

Flask's Celery pattern: the configuration lives in :mod:`core.celery_config` (shared with
the API, which publishes by task name); this entry module adds the task modules and the
worker's signal handlers.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from core.celery_config import make_celery
from core.config import Settings

TASK_MODULES = ("workers.tasks", "workers.webhook_tasks", "workers.embed_tasks")


def make_worker_celery(settings: Settings | None = None) -> Celery:
    """The Celery app with the worker's task modules; its task events (for Flower) are
    published in batches (:mod:`workers.celery_events`)."""
    app = make_celery(settings, include=TASK_MODULES)
    app.events_cls = "workers.celery_events:WorkerEvents"
    return app


@setup_logging.connect
def _logging(**_kwargs) -> None:
    """Our JSON (or text) logs for Celery's own lines too (LOG_FORMAT, LOG_LEVEL)."""
    from core.logs import configure_logging

    configure_logging()


@worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    from workers import context

    context.after_fork()


@worker_process_shutdown.connect
def _process_shutdown(**_kwargs) -> None:
    from workers import context

    context.stop_presence()


@worker_ready.connect
def _ready(sender=None, **_kwargs) -> None:
    """A thread-pool worker (events role, batching model role) runs tasks in this
    process: announce it (and warm its models)."""
    import os

    from workers import context

    if os.environ.get("HARK_WORKER_ROLE") == "events":
        context.start_presence()
        context.start_relay()
    elif os.environ.get("HARK_WORKER_POOL") == "threads":
        context.start_in_process()


@worker_shutdown.connect
def _shutdown(**_kwargs) -> None:
    import os

    from workers import context

    if os.environ.get("HARK_WORKER_ROLE") == "events":
        context.stop_relay()
    if os.environ.get("HARK_WORKER_POOL") == "threads":
        context.stop_presence()


app = make_worker_celery()
