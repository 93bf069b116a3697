"""The Celery configuration shared by publishers and workers.

The API builds its app with :func:`make_celery` and publishes by task name; it never
imports task modules. The worker's entry module, ``workers.celery_app``, builds the same
app with its task modules and signal handlers.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from core.broker_transport import TRANSPORT
from core.config import Settings
from core.dispatch import MAINTENANCE_QUEUE, SWEEP_TASK
from core.events import RECOVER_TASK, WEBHOOKS_QUEUE
from core.retention import RETENTION_TASK
from core.retention import enabled as retention_enabled
from core.vector_indexes import MAINTAIN_INTERVAL, MAINTAIN_TASK


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
        if url.startswith("redis://"):  # kombu's transport, one command client per channel
            conf["broker_transport"] = TRANSPORT
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
    # Gives collections above SEARCH_EXACT_MAX segments their own HNSW index.
    schedule["vector-indexes"] = {
        "task": MAINTAIN_TASK,
        "schedule": MAINTAIN_INTERVAL,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": MAINTAIN_INTERVAL},
    }
    # Deletes expired results and media; only when RESULT_ or MEDIA_RETENTION is set.
    if retention_enabled(settings):
        schedule["retention"] = {
            "task": RETENTION_TASK,
            "schedule": settings.retention_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.retention_interval},
        }
    return schedule


def make_celery(settings: Settings | None = None, *, include: Sequence[str] = ()) -> Celery:
    """A Celery app with our configuration. Publishers (the API) pass no ``include`` and
    send by task name; the worker's entry module (``workers.celery_app``) names its task
    modules."""
    settings = settings or Settings.from_env()
    app = Celery("hark", include=list(include))
    app.conf.update(celery_config(settings))
    return app
