"""What the API accepts, from what workers report: online worker processes (presence rows
refreshed within three heartbeat intervals), the models they can run and the queues
they consume.

The API validates ``model`` against the union of ``available`` over online workers, so
an API host needs no model packages; with no worker online (or none reporting) it falls
back to the configured list (``MODELS``), and submissions wait for a worker. A ``queue``
is checked against the union of online model workers' queues (see :func:`OnlineReport`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.models import WorkerPresence, utcnow

MODEL_ROLE = "model"
"""The worker role that runs submitted tasks (events workers deliver webhooks)."""


@dataclass(frozen=True)
class OnlineReport:
    """What online workers report, read in one statement."""

    models: frozenset[str]
    """Models online workers can run; empty when none reports any."""
    queues: frozenset[str]
    """Queues online model workers consume; empty when no model worker is online."""

    def accepted_models(self, settings: Settings) -> list[str]:
        """Sorted model names online workers can run, else ``settings.models``."""
        return sorted(self.models or settings.models)


def _cutoff(heartbeat_interval: float):
    return utcnow() - timedelta(seconds=3 * heartbeat_interval + 1)


def online_workers(session: Session, heartbeat_interval: float) -> list[WorkerPresence]:
    """Presence rows refreshed within three heartbeat intervals."""
    stmt = (select(WorkerPresence).where(WorkerPresence.last_seen >= _cutoff(heartbeat_interval))
            .order_by(WorkerPresence.node, WorkerPresence.pid))
    return list(session.scalars(stmt))


def online_report(session: Session, heartbeat_interval: float) -> OnlineReport:
    """The models and queues of online workers."""
    rows = session.execute(
        select(WorkerPresence.role, WorkerPresence.queues, WorkerPresence.available)
        .where(WorkerPresence.last_seen >= _cutoff(heartbeat_interval)))
    models: set[str] = set()
    queues: set[str] = set()
    for role, consumed, available in rows:
        if role != MODEL_ROLE:  # events and embed workers run no submitted task
            continue
        if isinstance(available, list):
            models.update(name for name in available if isinstance(name, str))
        if isinstance(consumed, list):
            queues.update(name for name in consumed if isinstance(name, str))
    return OnlineReport(frozenset(models), frozenset(queues))


def accepted_models(session: Session, settings: Settings) -> list[str]:
    """Sorted model names online workers can run, else ``settings.models``."""
    return online_report(session, settings.heartbeat_interval).accepted_models(settings)
