"""Who is watching a task's live stream (``GET /tasks/<id>/stream``).

An API process writes a row while it has listeners for the task; the database's
triggers (migration 0009) send ``hark_task_events`` notifications for a task's events
and progress only while such a row is current, so unwatched tasks cost one index probe.
UNLOGGED on PostgreSQL: nothing here needs to survive a crash.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, UTCDateTime


class TaskWatcher(Base):
    """One API process listening for one task's changes, until ``expires_at``."""

    __tablename__ = "task_watchers"

    task_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    watcher: Mapped[str] = mapped_column(String(100), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
