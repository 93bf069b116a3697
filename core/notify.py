"""Waiting for a task to finish without sleep-polling the database.

On PostgreSQL one listener thread per process listens on the process's own channel and
on the shared ``hark_task_finished``, and wakes the requests waiting on the ids it
hears. A sync submission names its process's channel in the task message, so the worker
notifies that process alone (in the same transaction that stores the result); finishes
made elsewhere (the sweeper) go to the shared channel. The payload is the finished
task's public row as JSON when it fits (:mod:`core.task_sql`), else its id; a waiter
handed the row need not read it. The same channel carries replies to requests this
process sent to a worker (``reply:<token>:<body>``, see :meth:`CompletionWaiter.expect`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from core.task_sql import FINISHED_CHANNEL

log = logging.getLogger(__name__)
# A row payload starts with its id (``json_build_object('id', id, ...)``).
_ROW_ID = re.compile(r'\{"id" : "([0-9a-f-]{36})"')
REPLY_PREFIX = "reply:"


class Reply:
    """One expected reply (see :meth:`CompletionWaiter.expect`)."""

    def __init__(self, channel: str | None) -> None:
        self.channel = channel  # where the replier must send it; None: not listening
        self.token = secrets.token_hex(8)
        self.body: str | None = None
        self._event = threading.Event()

    def deliver(self, body: str) -> None:
        self.body = body
        self._event.set()

    def wait(self, timeout: float) -> str | None:
        """The reply's body, or None if none came within ``timeout`` seconds."""
        self._event.wait(timeout)
        return self.body


def reply_payload(token: str, body: str) -> str:
    """The NOTIFY payload a replier sends on the requester's channel."""
    return f"{REPLY_PREFIX}{token}:{body}"


class Subscription:
    """One caller's interest in one task finishing (see :meth:`CompletionWaiter.subscribe`)."""

    def __init__(self, waiter: CompletionWaiter, event: threading.Event, *,
                 armed: bool) -> None:
        self._waiter = waiter
        self.event = event
        # The listener was connected when we subscribed: any finish after now wakes us.
        self.armed = armed
        # The finished task's public columns (JSON types), when its notify carried them.
        self.row: dict[str, Any] | None = None

    @property
    def channel(self) -> str | None:
        """The channel to have the task's finish announced on (this process's own)."""
        return self._waiter.channel

    def wait(self, timeout: float, is_finished: Callable[[], bool]) -> bool:
        """True once ``is_finished()`` is true; False if ``timeout`` passes first.

        ``is_finished`` runs on each wake-up, at least every 2 s (a listener reconnect
        may have missed a notify), and first of all unless the subscription was made,
        armed, before the task could finish."""
        deadline = time.monotonic() + timeout
        if not self.armed and is_finished():
            return True
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.event.wait(min(remaining, 2.0))
            self.event.clear()
            if is_finished():
                return True


class CompletionWaiter:
    """Hands out :class:`Subscription` s to task finishes; one listener per process."""

    def __init__(self) -> None:
        self._dsn: str | None = None
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._replies: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._connected = threading.Event()
        self._closed = threading.Event()
        self.channel: str | None = None  # this process's own, once its listener started
        # More channels on the same connection: name -> handler(payload, or None after a
        # reconnect, when anything may have been missed). See :meth:`add_channel`.
        self._channels: dict[str, Callable[[str | None], None]] = {}

    def configure(self, database_url: str) -> None:
        """Listen on ``database_url``'s server (a ``postgresql://`` URL, any driver)."""
        scheme, sep, rest = database_url.partition("://")
        if not sep or not scheme.startswith("postgres"):
            raise ValueError(f"not a PostgreSQL URL: {scheme}://...")
        self._dsn = "postgresql://" + rest

    @contextmanager
    def subscribe(self, task_id: str) -> Iterator[Subscription]:
        """Listen for ``task_id`` finishing. Subscribe before the task's row is written
        and :meth:`Subscription.wait` need not read the row before its first wake-up."""
        assert self._dsn is not None, "CompletionWaiter.configure() was not called"
        self._ensure_listener()
        subscription = Subscription(self, threading.Event(), armed=False)
        with self._lock:
            self._subscriptions.setdefault(task_id, set()).add(subscription)
            subscription.armed = self._connected.is_set()
        try:
            yield subscription
        finally:
            with self._lock:
                waiters = self._subscriptions.get(task_id)
                if waiters is not None:
                    waiters.discard(subscription)
                    if not waiters:
                        del self._subscriptions[task_id]

    @contextmanager
    def expect(self) -> Iterator[Reply]:
        """A reply to be sent on this process's channel (``reply.channel``, None when the
        listener is not connected: a reply could not be heard) with ``reply.token``."""
        assert self._dsn is not None, "CompletionWaiter.configure() was not called"
        listening = self.ensure_listening()
        reply = Reply(self.channel if listening else None)
        with self._lock:
            self._replies[reply.token] = reply
        try:
            yield reply
        finally:
            with self._lock:
                self._replies.pop(reply.token, None)

    def add_channel(self, channel: str, handler: Callable[[str | None], None]) -> None:
        """Also listen on ``channel`` (from the next second on if already listening) and
        hand its payloads to ``handler``, on the listener thread: keep it short."""
        with self._lock:
            self._channels[channel] = handler

    def ensure_listening(self) -> bool:
        """Start this process's listener if needed; True once it is connected."""
        self._ensure_listener()
        return self._connected.is_set()

    def _ensure_listener(self) -> None:
        # Threads do not survive fork: start one per process, lazily.
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._connected.clear()  # a forked child inherits the parent's flag, not its socket
            self.channel = f"hark_done_{self._pid}_{secrets.token_hex(6)}"
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
                    conn.execute(f"LISTEN {self.channel}")
                    heard = self._listen_extra(conn, set())
                    self._connected.set()
                    backoff = 0.1
                    self._wake_all()
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=1.0):
                            handler = self._channels.get(note.channel)
                            if handler is not None:
                                handler(note.payload)
                            else:
                                self._wake(note.payload)
                        heard = self._listen_extra(conn, heard)
            except Exception as exc:  # reconnect on any failure; waiters re-check meanwhile
                self._connected.clear()
                if self._closed.is_set():
                    return
                log.warning("completion listener lost its connection: %s", exc)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _listen_extra(self, conn: psycopg.Connection, heard: set[str]) -> set[str]:
        with self._lock:
            wanted = set(self._channels)
        for channel in sorted(wanted - heard):
            conn.execute(f"LISTEN {channel}")
        return wanted

    def _wake(self, payload: str) -> None:
        if payload.startswith(REPLY_PREFIX):
            token, _, body = payload[len(REPLY_PREFIX):].partition(":")
            with self._lock:
                reply = self._replies.get(token)
            if reply is not None:
                reply.deliver(body)
            return
        matched = _ROW_ID.match(payload)
        task_id = matched.group(1) if matched else payload
        with self._lock:
            waiters = list(self._subscriptions.get(task_id, ()))
        if not waiters:
            return
        row = None
        if matched:
            try:
                row = json.loads(payload)
            except ValueError:
                log.warning("unreadable completion payload for task %s", task_id)
        for subscription in waiters:
            subscription.row = row
            subscription.event.set()

    def _wake_all(self) -> None:
        with self._lock:
            waiters = [w for group in self._subscriptions.values() for w in group]
            handlers = list(self._channels.values())
        for handler in handlers:
            handler(None)
        for subscription in waiters:
            subscription.event.set()
