"""Putting tasks on broker queues: commit the row first, then publish.

The API and the sweeper both publish through :func:`publish`. The Celery app is passed
in, so nothing here imports worker code.
"""

from __future__ import annotations

import logging
import os
import queue as queue_module
import threading
import time
import uuid
from typing import Any

from celery import Celery

from core import lifecycle
from core.db import Database
from core.models import Task, utcnow
from core.status import TaskStatus

log = logging.getLogger(__name__)

EXECUTE_TASK = "hark.execute"
SWEEP_TASK = "hark.sweep"
MAINTENANCE_QUEUE = "maintenance"
DEVICE_CLASSES = ("cpu", "gpu")
MAX_PRIORITY = 9

_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class BrokerUnavailable(Exception):
    """The message broker could not take the task."""


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


def publish(celery_app: Celery, task_id: uuid.UUID, queue: str, priority: int = 0) -> None:
    """Send the execute message; the Celery task id is the platform task id."""
    celery_app.send_task(
        EXECUTE_TASK,
        args=[str(task_id)],
        task_id=str(task_id),
        queue=queue,
        priority=broker_priority(priority, celery_app.conf.broker_url or ""),
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
    assigner: AssignmentBatcher | None = None,
) -> Task:
    """Create the task row, commit it, publish it, and mark it assigned.

    If the broker refuses the message, the row is removed and :class:`BrokerUnavailable`
    raised, so a refused submission leaves nothing behind to run later. If this process
    dies between commit and publish, the sweeper publishes the ``created`` row. With an
    ``assigner`` the ``assigned`` mark is batched off the request path.
    """
    with db.engine.begin() as conn:
        task = lifecycle.insert_task(conn, owner=owner, endpoint=endpoint, data=data,
                                     priority=priority, queue=queue)
    try:
        publish(celery_app, task.id, queue, priority)
    except Exception as exc:
        log.warning("broker refused task %s: %s", task.id, exc)
        with db.transaction() as session:
            lifecycle.delete_task(session, task.id)
        raise BrokerUnavailable(str(exc)) from exc
    if assigner is not None:
        assigner.add(task.id, queue)
    else:
        with db.engine.begin() as conn:
            lifecycle.mark_assigned_many(conn, [(task.id, queue, utcnow())])
    task.status = TaskStatus.ASSIGNED.value  # it is on the queue
    return task


class AssignmentBatcher:
    """Marks published tasks ``assigned`` in batches, in a background thread.

    One UPDATE covers every submission of the last few milliseconds, so the request path
    pays for one transaction instead of two. A batch lost to a crash only leaves rows in
    ``created``, which the sweeper re-publishes (a duplicate message is skipped).
    """

    def __init__(self, db: Database, max_batch: int = 500, linger: float = 0.02) -> None:
        self.db = db
        self.max_batch = max_batch
        self.linger = linger
        self._queue: queue_module.SimpleQueue = queue_module.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def add(self, task_id: uuid.UUID, queue: str) -> None:
        self._ensure_thread()
        self._idle.clear()
        self._queue.put((task_id, queue, utcnow()))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything added so far is written (tests, shutdown)."""
        return self._idle.wait(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:  # threads do not survive fork: one per process, started lazily
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._queue = queue_module.SimpleQueue()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="hark-assigner")
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.linger
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue_module.Empty:
                    break
            for _try in range(2):  # a task deleted mid-batch fails its event's foreign key
                try:
                    with self.db.engine.begin() as conn:
                        lifecycle.mark_assigned_many(conn, batch)
                    break
                except Exception as exc:  # the sweeper repairs rows left in `created`
                    log.warning("could not mark %d tasks assigned: %s", len(batch), exc)
            if self._queue.empty():
                self._idle.set()


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
