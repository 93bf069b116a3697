"""Task events (``task.started``, ``task.completed``, ``task.failed``, ``task.not_finished``).

Workers and the sweeper call :func:`emit` after a status change commits. Emitting never
raises: a subscriber's problem must not change a task's outcome.
"""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger(__name__)

STARTED = "task.started"
COMPLETED = "task.completed"
FAILED = "task.failed"
NOT_FINISHED = "task.not_finished"
ALL_EVENTS = (STARTED, COMPLETED, FAILED, NOT_FINISHED)


def emit(task_id: uuid.UUID, event: str) -> None:
    """Announce ``event`` for ``task_id`` to whoever subscribed (see webhooks)."""
    try:
        _deliver(task_id, event)
    except Exception:  # never let notification failures touch the task
        log.exception("could not emit %s for task %s", event, task_id)


def _deliver(task_id: uuid.UUID, event: str) -> None:
    """Hook for subscribers; webhooks plug in here."""
