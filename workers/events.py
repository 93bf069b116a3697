"""Task events (``task.started``, ``task.completed``, ``task.failed``, ``task.not_finished``).

Workers and the sweeper call :func:`emit` after a status change commits. Emitting never
raises: a subscriber's problem must not change a task's outcome.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

log = logging.getLogger(__name__)

STARTED = "task.started"
COMPLETED = "task.completed"
FAILED = "task.failed"
NOT_FINISHED = "task.not_finished"
ALL_EVENTS = (STARTED, COMPLETED, FAILED, NOT_FINISHED)

# Webhook deliveries run on their own queue, consumed by ``WORKER_ROLE=events`` workers.
WEBHOOKS_QUEUE = "webhooks"
DELIVER_TASK = "hark.webhooks.deliver"
RECOVER_TASK = "hark.webhooks.recover"


def emit(task_id: uuid.UUID, event: str, *, subscribed: bool | None = None,
         data: Any = None) -> None:
    """Announce ``event`` for ``task_id`` to whoever subscribed (see webhooks).

    ``subscribed=False`` (the owner has no webhooks, as read by the status move) with
    ``data`` holding no one-off callback for ``event`` skips the database lookup."""
    if subscribed is False and not _wants_callback(data, event):
        return
    try:
        _deliver(task_id, event)
    except Exception:  # never let notification failures touch the task
        log.exception("could not emit %s for task %s", event, task_id)


def _wants_callback(data: Any, event: str) -> bool:
    from workers.webhooks import callback_url

    return callback_url(data, event) is not None


def _deliver(task_id: uuid.UUID, event: str) -> None:
    """Record a webhook delivery per interested destination and queue it.

    Runs in the process that changed the task (a model worker or the sweeper). With no
    subscriptions and no one-off callback this is one indexed query; the HTTP requests
    happen later, on the ``webhooks`` queue, in an events worker.
    """
    from celery import current_app

    from workers import context, webhooks

    webhooks.enqueue_event(context.database(), current_app, task_id, event)
