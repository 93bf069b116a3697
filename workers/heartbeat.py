"""Keeping a running task's heartbeat fresh.

A :class:`Heartbeat` also writes progress (at most every ``min_write_interval`` seconds)
and notices when the task stopped being ``running`` under us (deleted by its owner): that
is cancellation. Periodic beats come from one background thread per process shared by
all its heartbeats, so a task costs no thread start and join: a task shorter than the
interval never beats at all.
"""

from __future__ import annotations

import contextvars
import logging
import os
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
        self._lock = threading.Lock()
        self._progress: int | None = None
        self._written_progress: int | None = None
        self._last_write = 0.0
        self.next_beat = 0.0
        # Held by the shared thread while it beats: __exit__ waits for a beat in flight.
        self._periodic = threading.Lock()
        self._stopped = False
        # The periodic beats keep the caller's log context (task id, owner).
        self._context = contextvars.copy_context()

    def __enter__(self) -> Heartbeat:
        self.next_beat = time.monotonic() + self.interval
        _beater().add(self)
        return self

    def __exit__(self, *_exc) -> None:
        _beater().remove(self)
        # No periodic beat runs after this returns (unless one hangs for 5 s).
        waited = self._periodic.acquire(timeout=5)
        self._stopped = True
        if waited:
            self._periodic.release()

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

    def periodic_beat(self) -> None:
        """The shared thread's beat: skipped once the task has left the ``with`` block."""
        with self._periodic:
            if not self._stopped:
                self._context.run(self.beat)
        self.next_beat = time.monotonic() + self.interval


class _Beater:
    """The thread that beats every running :class:`Heartbeat` of this process when due.

    Idle, it looks again every ``IDLE_WAKE`` seconds, so a task starting (due a whole
    interval later) usually need not wake it: no thread switch on the task's path.
    """

    IDLE_WAKE = 1.0

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._due = threading.Condition()
        self._beats: set[Heartbeat] = set()
        self._thread: threading.Thread | None = None
        self._wake_at = 0.0  # when the thread looks next

    def add(self, beat: Heartbeat) -> None:
        with self._due:
            self._beats.add(beat)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="hark-heartbeat")
                self._thread.start()
            elif beat.next_beat < self._wake_at:
                self._due.notify()

    def remove(self, beat: Heartbeat) -> None:
        with self._due:
            self._beats.discard(beat)

    def _run(self) -> None:
        while True:
            with self._due:
                now = time.monotonic()
                due = [b for b in self._beats if b.next_beat <= now]
                if not due:
                    self._wake_at = min((b.next_beat for b in self._beats),
                                        default=now + self.IDLE_WAKE)
                    self._due.wait(self._wake_at - now)
                    continue
            for beat in due:  # outside the lock: tasks start and end meanwhile
                try:
                    beat.periodic_beat()
                except Exception:  # one bad beat must not stop the others for good
                    log.exception("heartbeat for %s failed", beat.task_id)


_shared: _Beater | None = None
_shared_lock = threading.Lock()


def _beater() -> _Beater:
    """This process's beater; a forked child (a prefork pool process) makes its own."""
    global _shared
    shared = _shared
    if shared is None or shared.pid != os.getpid():
        with _shared_lock:
            if _shared is None or _shared.pid != os.getpid():
                _shared = _Beater()
            shared = _shared
    return shared
