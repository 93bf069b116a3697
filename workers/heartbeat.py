"""A background thread that keeps a running task's heartbeat fresh.

It also writes progress (at most every ``min_write_interval`` seconds) and notices when
the task stopped being ``running`` under us (deleted by its owner): that is cancellation.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid

from core import lifecycle
from core.db import Database

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        db: Database,
        task_id: uuid.UUID,
        interval: float,
        min_write_interval: float = 0.5,
        attempt: int | None = None,
    ) -> None:
        self.db = db
        self.task_id = task_id
        self.attempt = attempt
        self.interval = interval
        self.min_write_interval = min_write_interval
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._progress: int | None = None
        self._written_progress: int | None = None
        self._last_write = 0.0
        # The thread keeps the caller's log context (task id, owner).
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), daemon=True,
                                        name="hark-heartbeat")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def report(self, progress: int) -> None:
        """Record progress; written now if the last write is old enough."""
        with self._lock:
            self._progress = progress
        if time.monotonic() - self._last_write >= self.min_write_interval:
            self.beat()

    def beat(self) -> None:
        with self._lock:
            progress = self._progress if self._progress != self._written_progress else None
            self._last_write = time.monotonic()
        # Every quarter of the way is a step in the task's audit trail.
        milestone = progress is not None and progress // 25 > (self._written_progress or 0) // 25
        try:
            with self.db.transaction() as session:
                alive = lifecycle.heartbeat(session, self.task_id, progress, self.attempt,
                                            milestone)
        except Exception as exc:  # the database may be briefly down; keep working
            log.warning("heartbeat for %s failed: %s", self.task_id, exc)
            return
        if progress is not None:
            self._written_progress = progress
        if not alive:
            self.cancelled.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
