"""What online workers report, as the API checks submissions against it: the models
they can run and the queues they consume (:mod:`core.worker_models`).

Each API process reuses one read for ``PRESENCE_CACHE_SECONDS`` (1 s), so a stream of
submissions costs no query each. A queue no online model worker consumes is refused
with a 400 naming those they do, unless ``ALLOW_UNKNOWN_QUEUES=1``; with no model worker
online every queue is accepted (the task waits for a worker).
"""

from __future__ import annotations

import threading
import time

from flask import current_app

from app.errors import APIError
from core.db import Database
from core.dispatch import MAINTENANCE_QUEUE
from core.worker_models import OnlineReport, online_report


class OnlineCache:
    """The latest :class:`OnlineReport`, re-read once it is ``ttl`` seconds old."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entry: tuple[float, OnlineReport] | None = None

    def get(self, db: Database, heartbeat_interval: float) -> OnlineReport:
        entry = self._entry
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        with self._lock:  # one read per expiry, however many requests wait for it
            entry = self._entry
            if entry is not None and entry[0] > time.monotonic():
                return entry[1]
            with db.session() as session:
                report = online_report(session, heartbeat_interval)
            if self.ttl > 0:
                self._entry = (time.monotonic() + self.ttl, report)
            return report


def current_report() -> OnlineReport:
    """What online workers report, at most ``PRESENCE_CACHE_SECONDS`` old."""
    hark = current_app.extensions["hark"]
    return hark["online"].get(hark["db"], current_app.config["HARK"].heartbeat_interval)


def accepted_models() -> list[str]:
    """Sorted model names online workers can run, else the configured ``MODELS``."""
    return current_report().accepted_models(current_app.config["HARK"])


def check_queue(queue: str) -> None:
    """Refuse (400) a queue that no online model worker consumes while some are online,
    unless ``ALLOW_UNKNOWN_QUEUES``."""
    if current_app.config["HARK"].allow_unknown_queues:
        return
    consumed = current_report().queues
    if not consumed or queue in consumed:
        return
    named = sorted(consumed - {MAINTENANCE_QUEUE}) or sorted(consumed)
    raise APIError(400, "unknown_queue",
                   f"no online worker consumes queue {queue!r}; online workers consume: "
                   + ", ".join(named), {"queue": [f"choose one of {named}"]})
