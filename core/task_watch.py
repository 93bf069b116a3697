"""Fan-out of task changes to live streams, one PostgreSQL listener per process.

:class:`TaskWatch` rides on the process's :class:`~core.notify.CompletionWaiter`
connection (channel ``hark_task_events``). While a process has streams open for a task
it keeps a ``task_watchers`` row, so the database notifies that task's events and
progress changes (triggers of migration 0009) and nothing else: tasks nobody watches
cost one index probe per trail entry or progress change. A notification only wakes the
task's streams, which read what changed themselves. Until the listener is connected the
streams re-read on a short interval.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete

from core.db import Database
from core.models import utcnow
from core.models_stream import TaskWatcher
from core.notify import CompletionWaiter

log = logging.getLogger(__name__)
EVENTS_CHANNEL = "hark_task_events"


class TaskWatch:
    """Hands out wake-up events per task; registers the process as a watcher meanwhile."""

    def __init__(self, db: Database, waiter: CompletionWaiter, lease_seconds: float) -> None:
        self._db = db
        self._waiter = waiter
        self._lease = timedelta(seconds=lease_seconds)
        self._lock = threading.Lock()
        self._events: dict[str, set[threading.Event]] = {}
        self._name = f"{os.getpid()}-{secrets.token_hex(6)}"
        waiter.add_channel(EVENTS_CHANNEL, self._on_notify)

    @property
    def listening(self) -> bool:
        """True when notifications wake streams (else they should re-read often)."""
        return self._waiter.ensure_listening()

    @contextmanager
    def watch(self, task_id: uuid.UUID,
              event: threading.Event | None = None) -> Iterator[threading.Event]:
        """An event (``event``, else a new one) set whenever ``task_id`` may have
        changed, until the block ends. Read the task *after* entering: changes from then
        on are announced."""
        key, event = str(task_id), event or threading.Event()
        self.listening  # noqa: B018 - connect the listener before the first read
        with self._lock:
            self._events.setdefault(key, set()).add(event)
        self._register(task_id)  # every stream renews the lease (ends within it)
        try:
            yield event
        finally:
            with self._lock:
                group = self._events.get(key)
                group.discard(event)
                last = not group
                if last:
                    del self._events[key]
            if last:
                self._unregister(task_id)

    def _register(self, task_id: uuid.UUID) -> None:
        values = {"task_id": task_id, "watcher": self._name,
                  "expires_at": utcnow() + self._lease}
        with self._db.transaction() as session:
            session.merge(TaskWatcher(**values))

    def _unregister(self, task_id: uuid.UUID) -> None:
        try:
            with self._db.transaction() as session:
                session.execute(delete(TaskWatcher).where(TaskWatcher.task_id == task_id,
                                                          TaskWatcher.watcher == self._name))
        except Exception as exc:  # the row expires by itself
            log.warning("could not drop the watcher row of task %s: %s", task_id, exc)

    def _on_notify(self, payload: str | None) -> None:
        with self._lock:
            if payload is None:  # the listener reconnected: wake everyone to re-read
                events = [e for group in self._events.values() for e in group]
            else:
                events = list(self._events.get(payload.strip(), ()))
        for event in events:
            event.set()
