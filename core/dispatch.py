"""Putting tasks on broker queues: commit the row first, then publish.

The API and the sweeper both publish through :func:`publish`. The Celery app is passed
in, so nothing here imports worker code.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from typing import Any

from celery import Celery

from core import lifecycle, media_store
from core.db import Database
from core.media_store import Upload
from core.models import Task
from core.publisher import redis_publisher

log = logging.getLogger(__name__)

EXECUTE_TASK = "hark.execute"
SWEEP_TASK = "hark.sweep"
MAINTENANCE_QUEUE = "maintenance"
DEVICE_CLASSES = ("cpu", "gpu")
MAX_PRIORITY = 9

_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class SubmissionRefused(Exception):
    """The task was not created; nothing of it is left behind."""


class BrokerUnavailable(SubmissionRefused):
    """The message broker could not take the task."""


class TooManyActiveTasks(SubmissionRefused):
    """The owner already has ``limit`` tasks created, assigned or running."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} active tasks per key")
        self.limit = limit


def resolve_queue(default_device: str, device: str | None = None, queue: str | None = None) -> str:
    """The queue a task goes to: an explicit queue, else its device class's queue."""
    if queue:
        return queue
    return device or default_device


def broker_priority(priority: int, broker_url: str) -> int:
    """Map our priority (0..9, higher runs sooner) to the broker's own scale.

    AMQP serves higher numbers first; kombu's Redis transport serves lower numbers first.
    """
    priority = max(0, min(MAX_PRIORITY, int(priority)))
    if broker_url.startswith(("redis", "rediss", "sentinel")):
        return MAX_PRIORITY - priority
    return priority


def publish(celery_app: Celery, task_id: uuid.UUID, queue: str, priority: int = 0, *,
            notify: bool | str = True) -> None:
    """Send the execute message; the Celery task id is the platform task id.

    ``notify``: where the worker announces the finish. A sync submission names its API
    process's channel; ``False`` (a deferred submission: nobody waits on it) spares the
    worker the ``NOTIFY``; ``True`` uses the shared channel. On Redis one LPUSH of the
    message ``send_task`` would write (:mod:`core.publisher`).
    """
    kwargs = {} if notify is True else {"notify": notify}
    publisher = redis_publisher(celery_app)
    if publisher is not None:
        publisher.publish(EXECUTE_TASK, str(task_id), [str(task_id)], queue,
                          broker_priority(priority, "redis"), kwargs)
        return
    broker_pri = broker_priority(priority, celery_app.conf.broker_url or "")
    celery_app.send_task(
        EXECUTE_TASK,
        args=[str(task_id)],
        kwargs=kwargs,
        task_id=str(task_id),
        queue=queue,
        priority=broker_pri,
        retry=True,
        retry_policy=_PUBLISH_RETRY,
    )


def submit(
    db: Database,
    celery_app: Celery,
    *,
    owner: str,
    endpoint: str,
    data: Any,
    queue: str,
    priority: int = 0,
    max_active: int = 0,
    task_id: uuid.UUID | None = None,
    notify: bool | str = True,
    upload: Upload | None = None,
    key: dict[str, Any] | None = None,
) -> Task:
    """Commit the task row (with ``task_id`` when given), then publish its message
    (``notify``: see :func:`publish`).

    The row is written already ``assigned`` to ``queue`` (its trail reads ``created``,
    ``assigned``), so clients read their own writes and the submission costs one SQL
    statement and one broker write. With ``max_active`` set, an owner with that many
    active tasks is refused (:class:`TooManyActiveTasks`) by that statement. ``upload``
    (the request's media file) is stored in the same transaction as the row, so a
    refused or failed submission leaves no blob. If the broker refuses the message, the
    row (and its blob, by cascade) is removed and :class:`BrokerUnavailable` raised: a
    refused submission leaves nothing behind to run later. If this process dies between
    the commit and the publish, the sweeper re-publishes the row after
    ``ASSIGNED_GRACE``, as it does for any message the broker lost.

    Without an upload the statement runs in autocommit (no BEGIN/COMMIT round trips).
    ``key``: the statement also claims that idempotency key (see
    :meth:`core.idempotency.Keyed.claim_params`); held by another request, it makes nothing
    (no row, no blob) and raises :class:`~core.task_sql.KeyHeld`.
    """
    with db.engine.connect() as conn:
        if upload is None:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        with conn.begin() if upload is not None else nullcontext():
            task = lifecycle.insert_task(conn, owner=owner, endpoint=endpoint, data=data,
                                         priority=priority, queue=queue,
                                         max_active=max_active, assigned=True,
                                         task_id=task_id, key=key)
            if task is None:
                raise TooManyActiveTasks(max_active)
            if upload is not None:
                media_store.store(conn, upload, task.id)
        try:
            publish(celery_app, task.id, queue, priority, notify=notify)
        except Exception as exc:
            log.warning("broker refused task %s: %s", task.id, exc)
            with conn.begin() if upload is not None else nullcontext():
                lifecycle.delete_task(conn, task.id)
            raise BrokerUnavailable(str(exc)) from exc
    return task


def republish(db: Database, celery_app: Celery, task: Task) -> bool:
    """Publish an existing task again (sweeper, user retry). False if the broker refused."""
    queue = task.queue or "cpu"
    try:
        publish(celery_app, task.id, queue, task.priority)
    except Exception as exc:
        log.warning("could not re-publish task %s: %s", task.id, exc)
        return False
    with db.transaction() as session:
        if lifecycle.mark_assigned(session, task.id, queue) is None:
            lifecycle.record(session, task.id, "requeued", {"queue": queue})
    return True
