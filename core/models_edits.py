"""Corrections kept with a transcription task (see :mod:`core.task_edits`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, JSONType, UTCDateTime, utcnow


class TaskEdits(Base):
    """A task's corrections: ``speaker_names`` {label: name}, ``segments`` {index: text}."""

    __tablename__ = "task_edits"

    task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_edits_task_id"),
        primary_key=True)
    speaker_names: Mapped[Any] = mapped_column(JSONType)
    segments: Mapped[Any] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
