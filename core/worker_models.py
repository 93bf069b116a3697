"""What the API accepts, from what workers report: online worker processes (presence rows
refreshed within three heartbeat intervals) and the models they can run.

The API validates ``model`` against the union of ``available`` over online workers, so
an API host needs no model packages; with no worker online (or none reporting) it falls
back to the configured list (``MODELS``), and submissions wait for a worker.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.models import WorkerPresence, utcnow


def online_workers(session: Session, heartbeat_interval: float) -> list[WorkerPresence]:
    """Presence rows refreshed within three heartbeat intervals."""
    cutoff = utcnow() - timedelta(seconds=3 * heartbeat_interval + 1)
    stmt = (select(WorkerPresence).where(WorkerPresence.last_seen >= cutoff)
            .order_by(WorkerPresence.node, WorkerPresence.pid))
    return list(session.scalars(stmt))


def accepted_models(session: Session, settings: Settings) -> list[str]:
    """Sorted model names online workers can run, else ``settings.models``."""
    cutoff = utcnow() - timedelta(seconds=3 * settings.heartbeat_interval + 1)
    reported = session.scalars(select(WorkerPresence.available)
                               .where(WorkerPresence.last_seen >= cutoff))
    names = {name for available in reported if isinstance(available, list)
             for name in available if isinstance(name, str)}
    return sorted(names or settings.models)
