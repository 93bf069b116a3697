"""Idempotency keys: a repeated submission (same owner, key and request) names one task.

A request's *fingerprint* hashes its endpoint, fields and media (see
``app.idempotency``). A claim records ``(owner, key) -> (fingerprint, task id)``;
whoever inserts the row makes the task, and every later request with that key,
concurrent or not, is answered with the same task id for 24 hours, or refused when its
fingerprint differs. A request without an uploaded file claims its key in its task's own
INSERT (:meth:`Keyed.claim_params`, :func:`core.task_sql.insert`): the claim and the
task commit together, in one statement. One with a file claims first (:func:`claim`),
so that a replay reads no upload, then makes the task under that claim.
:func:`release` forgets a claim whose request failed after making it, so that a retry
can make its task.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import delete

from core.db import Database
from core.models import utcnow
from core.models_idempotency import IdempotencyKey
from core.task_sql import LAZY_COMMIT, KeyHeld

__all__ = ["Claim", "KeyHeld", "Keyed", "claim", "fingerprint", "held", "release"]

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    """What :func:`claim` found: this request's to make (``new``), or an earlier one's."""

    task_id: uuid.UUID
    new: bool
    endpoint: str
    matches: bool
    """False: the key was used for a different request (answer 409)."""
    age: float = 0.0
    """Seconds since the key was claimed."""


@dataclass(frozen=True)
class Keyed:
    """A keyed request's task, its id chosen before the task exists. ``claimed``: its key
    is claimed already (:func:`claim`); else the task's INSERT claims it."""

    owner: str
    key: str
    endpoint: str
    digest: str
    task_id: uuid.UUID = field(default_factory=uuid.uuid4)
    claimed: bool = False

    def claim_params(self) -> dict[str, Any] | None:
        """The key for :func:`core.task_sql.insert` to claim; None if claimed already."""
        if self.claimed:
            return None
        return {"key": self.key, "key_endpoint": self.endpoint, "fingerprint": self.digest,
                "expired": utcnow() - KEY_LIFETIME}


def fingerprint(endpoint: str, fields: Any, media_digest: str | None) -> str:
    """A SHA-256 of the request: endpoint, fields (as canonical JSON) and media digest."""
    canonical = json.dumps({"endpoint": endpoint, "fields": fields, "media": media_digest},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# One statement: claim the key, or replace a claim older than the key's lifetime. Its
# commit need not wait for its WAL flush: the task's own INSERT, later in the same WAL,
# does wait, so a task that exists has a durable claim; a claim lost in a crash named no
# task yet, and its client, which got no answer, retries with a fresh claim.
CLAIM_SQL = f"""
INSERT INTO idempotency_keys AS held (owner, key, endpoint, fingerprint, task_id, created_at)
VALUES (%(owner)s, %(key)s, %(endpoint)s, %(fingerprint)s, %(task_id)s, %(now)s)
ON CONFLICT (owner, key) DO UPDATE SET endpoint = excluded.endpoint,
    fingerprint = excluded.fingerprint, task_id = excluded.task_id,
    created_at = excluded.created_at
WHERE held.created_at < %(expired)s
RETURNING task_id, {LAZY_COMMIT}
"""
HELD_SQL = """SELECT task_id, endpoint, fingerprint, created_at FROM idempotency_keys
WHERE owner = %(owner)s AND key = %(key)s"""


def claim(db: Database, *, owner: str, key: str, endpoint: str, digest: str) -> Claim:
    """Claim ``key`` for this request, or find who holds it. One fixed statement when the
    key is new (or its claim expired, which it replaces), committed without waiting for
    the WAL (see ``CLAIM_SQL``); a second to read an existing one."""
    task_id = uuid.uuid4()
    now = utcnow()
    params = {"owner": owner, "key": key, "endpoint": endpoint, "fingerprint": digest,
              "task_id": task_id, "now": now, "expired": now - KEY_LIFETIME}
    assert db.engine is not None, "Database.configure() was not called"
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        inserted = conn.exec_driver_sql(CLAIM_SQL, params).first()
    if inserted is not None:
        return Claim(task_id, True, endpoint, True)
    found = held(db, owner=owner, key=key, digest=digest)
    if found is None:  # released (or expired) since our insert: try again
        return claim(db, owner=owner, key=key, endpoint=endpoint, digest=digest)
    return found


def held(db: Database, *, owner: str, key: str, digest: str) -> Claim | None:
    """The unexpired claim of ``key`` (``matches``: made by a request with ``digest``),
    as committed now; None if there is none."""
    assert db.engine is not None, "Database.configure() was not called"
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        row = conn.exec_driver_sql(HELD_SQL, {"owner": owner, "key": key}).first()
    if row is None:
        return None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    age = utcnow() - created
    if age >= KEY_LIFETIME:
        return None
    return Claim(row.task_id, False, row.endpoint, row.fingerprint == digest,
                 age.total_seconds())


def release(db: Database, *, owner: str, key: str, task_id: uuid.UUID) -> bool:
    """Forget a claim whose request made no task (only if it still names ``task_id``).
    True if there was one."""
    with db.transaction() as session:
        return session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.owner == owner, IdempotencyKey.key == key,
            IdempotencyKey.task_id == task_id)).rowcount > 0
