"""Waiting for a task to finish without sleep-polling the database.

On PostgreSQL one listener thread per process runs ``LISTEN hark_task_finished`` and
wakes the requests waiting on the ids it hears (workers ``NOTIFY`` in the same
transaction that stores the result). On SQLite, waiters re-check on a short interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import psycopg

from core.lifecycle import FINISHED_CHANNEL

log = logging.getLogger(__name__)


class CompletionWaiter:
    """Blocks a caller until ``is_finished()`` holds or the timeout passes."""

    def __init__(self) -> None:
        self._dsn: str | None = None
        self._events: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._connected = threading.Event()
        self._closed = threading.Event()

    def configure(self, database_url: str) -> None:
        if database_url.startswith(("postgresql", "postgres")):
            dsn = database_url.split("://", 1)[1]
            self._dsn = "postgresql://" + dsn
        else:
            self._dsn = None

    @property
    def listening(self) -> bool:
        return self._dsn is not None

    def wait(self, task_id: str, timeout: float, is_finished: Callable[[], bool]) -> bool:
        """True once ``is_finished()`` is true; False if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        if not self.listening:
            return self._poll(deadline, is_finished, interval=0.05)
        self._ensure_listener()
        event = threading.Event()
        with self._lock:
            self._events.setdefault(task_id, set()).add(event)
        try:
            # Subscribed before the first check, so a notify in between is not missed.
            while True:
                if is_finished():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # A periodic re-check covers a listener reconnect that missed a notify.
                event.wait(min(remaining, 2.0))
                event.clear()
        finally:
            with self._lock:
                waiters = self._events.get(task_id)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._events[task_id]

    @staticmethod
    def _poll(deadline: float, is_finished: Callable[[], bool], interval: float) -> bool:
        while True:
            if is_finished():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def _ensure_listener(self) -> None:
        # Threads do not survive fork: start one per process, lazily.
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._listen_forever, daemon=True,
                                            name="hark-completion-listener")
            self._thread.start()
        self._connected.wait(2.0)

    def close(self) -> None:
        """Stop the listener thread (it exits within a second)."""
        self._closed.set()

    def _listen_forever(self) -> None:
        backoff = 0.1
        while not self._closed.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f"LISTEN {FINISHED_CHANNEL}")
                    self._connected.set()
                    backoff = 0.1
                    self._wake_all()
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._wake(note.payload)
            except Exception as exc:  # reconnect on any failure; waiters re-check meanwhile
                self._connected.clear()
                if self._closed.is_set():
                    return
                log.warning("completion listener lost its connection: %s", exc)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _wake(self, task_id: str) -> None:
        with self._lock:
            events = list(self._events.get(task_id, ()))
        for event in events:
            event.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [e for group in self._events.values() for e in group]
        for event in events:
            event.set()
