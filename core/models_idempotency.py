"""The ``idempotency_keys`` table: which task a client's ``Idempotency-Key`` made."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, UTCDateTime, utcnow


class IdempotencyKey(Base):
    """One owner's key: the request it came with (``fingerprint``) and the task it names.

    The task id is chosen when the key is claimed, before the task row exists, so a
    concurrent request with the same key knows which task to answer with.
    """

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
