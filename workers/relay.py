"""The delivery relay: sends the webhook deliveries that status moves wrote (the outbox).

One relay thread per events worker process claims due deliveries
(:func:`workers.webhooks.claim_due`, ``FOR UPDATE SKIP LOCKED``: several relays on several
hosts share the work and send each attempt once) and hands them to a pool of sender
threads, so one slow subscriber holds up no other. It sleeps until the next delivery is
due or a move wakes it (``NOTIFY hark_deliveries``, sent when a move or a redelivery
commits), at most ``POLL_S`` (a missed notify only delays a delivery). Every
``RECOVER_S`` it also runs :func:`workers.webhooks.recover`.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg

from core.db import Database
from core.models import utcnow
from core.task_sql import DELIVERIES_CHANNEL
from workers import webhooks
from workers.webhook_http import WebhookSettings

log = logging.getLogger(__name__)

POLL_S = 2.0
RECOVER_S = 30.0


class DeliveryRelay:
    """Claims and sends due deliveries until :meth:`stop`."""

    def __init__(self, db: Database, settings: WebhookSettings, concurrency: int = 16) -> None:
        self.db = db
        self.settings = settings
        self.concurrency = max(1, concurrency)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hark-send")
        self._in_flight: set[Future] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_recover = 0.0

    def start(self) -> DeliveryRelay:
        self._thread = threading.Thread(target=self._run, daemon=True, name="hark-relay")
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _dsn(self) -> str:
        assert self.db.engine is not None
        return self.db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f"LISTEN {DELIVERIES_CHANNEL}")
                    backoff = 0.5
                    while not self._stop.is_set():
                        self._wait(conn, self.pass_once())
            except Exception as exc:  # the database went away: try again shortly
                if self._stop.is_set():
                    return
                log.warning("delivery relay: %s; retrying in %gs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def pass_once(self) -> float:
        """Claim what is due and start sending it; returns how long to sleep."""
        if time.monotonic() - self._last_recover >= RECOVER_S:
            self._last_recover = time.monotonic()
            webhooks.recover(self.db, self.settings)
        with self._lock:
            free = self.concurrency - len(self._in_flight)
        claimed = webhooks.claim_due(self.db, free, self.settings.timeout + webhooks.LEASE_MARGIN)
        for delivery in claimed:
            future = self._pool.submit(self._send, delivery)
            with self._lock:
                self._in_flight.add(future)
            future.add_done_callback(self._done)
        if claimed and len(claimed) == free:
            return 0.05  # more may be due: look again once a sender is free
        due = webhooks.next_due(self.db)
        if due is None:
            return POLL_S
        return min(POLL_S, max(0.0, (due - utcnow()).total_seconds()))

    def _wait(self, conn: psycopg.Connection, seconds: float) -> None:
        if seconds <= 0:
            return
        for _ in conn.notifies(timeout=seconds, stop_after=1):
            pass

    def _send(self, delivery) -> None:
        try:
            webhooks.deliver(self.db, delivery, self.settings)
        except Exception:  # its lease runs out and recover() counts the attempt
            log.exception("webhook delivery %s crashed", delivery.id)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._in_flight.discard(future)
