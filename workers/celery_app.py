"""The Celery app. Workers and beat start from here: ``celery -A workers.celery_app ...``.

The API builds its own instance with :func:`make_celery` to publish messages by task
name; it never imports the task modules or any model code.
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

from core.config import Settings
from core.dispatch import MAINTENANCE_QUEUE, SWEEP_TASK
from workers.events import RECOVER_TASK, WEBHOOKS_QUEUE
from workers.retention import RETENTION_TASK
from workers.retention import enabled as retention_enabled


def celery_config(settings: Settings) -> dict:
    """Celery settings for reliable, one-at-a-time execution of long tasks."""
    url = settings.broker_url
    conf: dict = dict(
        broker_url=url,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # Ack after the task ran, take one message at a time: a crash never loses a task
        # and a long task never holds others back on a busy worker.
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=False,
        task_default_queue=settings.default_device,
        task_create_missing_queues=True,
        # No "task-sent" event per publish: Flower sees tasks from the workers' events.
        task_send_sent_event=False,
        worker_send_task_events=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        broker_pool_limit=20,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    if url.startswith(("redis", "rediss", "sentinel")):
        conf["broker_transport_options"] = {
            "visibility_timeout": settings.visibility_timeout,
            # How often workers look for overdue unacked messages (a cheap ZRANGEBYSCORE).
            "unacked_restore_interval": max(1, min(10, int(settings.visibility_timeout / 4))),
            "unacked_restore_throttle": 1,
            "queue_order_strategy": "priority",
            "priority_steps": list(range(10)),
            "sep": ":",
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
            "retry_on_timeout": True,
        }
        if settings.broker_key_prefix:
            conf["broker_transport_options"]["global_keyprefix"] = settings.broker_key_prefix
    else:  # AMQP: priority queues need the x-max-priority argument.
        conf["task_queue_max_priority"] = 10
        conf["task_default_priority"] = 0
    return conf


def beat_schedule(settings: Settings) -> dict:
    """What Celery beat sends, and to which queue."""
    schedule = {
        "sweep": {
            "task": SWEEP_TASK,
            "schedule": settings.sweep_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.sweep_interval},
        },
        # Counts attempts of relays that died mid-send; drops old finished deliveries.
        "webhooks-recover": {
            "task": RECOVER_TASK,
            "schedule": 30.0,
            "options": {"queue": WEBHOOKS_QUEUE, "expires": 30.0},
        },
    }
    # Deletes expired results and media; only when RESULT_ or MEDIA_RETENTION is set.
    if retention_enabled(settings):
        schedule["retention"] = {
            "task": RETENTION_TASK,
            "schedule": settings.retention_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.retention_interval},
        }
    return schedule


def make_celery(settings: Settings | None = None, *, with_tasks: bool = True) -> Celery:
    settings = settings or Settings.from_env()
    include = ["workers.tasks", "workers.webhook_tasks"] if with_tasks else []
    app = Celery("hark", include=include)
    app.conf.update(celery_config(settings))
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
    """A thread-pool worker (events role) runs tasks in this process: announce it."""
    import os

    if os.environ.get("HARK_WORKER_ROLE") == "events":
        from workers import context

        context.start_presence()
        context.start_relay()


@worker_shutdown.connect
def _shutdown(**_kwargs) -> None:
    import os

    if os.environ.get("HARK_WORKER_ROLE") == "events":
        from workers import context

        context.stop_relay()
        context.stop_presence()


app = make_celery()
