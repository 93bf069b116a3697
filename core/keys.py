"""API keys: created once, stored as SHA-256 hashes, looked up by hash.

Keys are 256-bit random tokens, so a fast hash is the right tool (no password KDF needed);
the final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import ApiKey

KEY_PREFIX = "hk_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's owner scopes every task, collection and webhook."""

    key_id: str
    owner: str
    name: str
    is_admin: bool


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(
    session: Session,
    *,
    name: str,
    owner: str | None = None,
    is_admin: bool = False,
    raw: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its plaintext (shown once, never stored)."""
    raw = raw or generate_key()
    key = ApiKey(
        name=name,
        owner=owner or name,
        key_hash=hash_key(raw),
        prefix=raw[:10],
        is_admin=is_admin,
    )
    session.add(key)
    session.flush()
    return key, raw


def ensure_bootstrap_key(session: Session, raw: str) -> ApiKey:
    """Make sure an admin key with exactly this value exists (compose, scripts). A key
    an operator revoked stays revoked: a restart never brings it back."""
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw)))
    if existing is not None:
        return existing
    key, _ = create_key(session, name="bootstrap", owner="admin", is_admin=True, raw=raw)
    return key


def find_principal(session: Session, raw: str) -> Principal | None:
    digest = hash_key(raw)
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, digest):
        return None
    return Principal(key_id=str(key.id), owner=key.owner, name=key.name, is_admin=key.is_admin)


class PrincipalCache:
    """A short-lived in-process cache so each request does not hit the keys table; it
    also remembers keys found invalid (``refuse``) as long, in a table of their own."""

    def __init__(self, ttl: float = 10.0, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._refused: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, raw: str) -> Principal | None:
        digest = hash_key(raw)
        with self._lock:
            entry = self._entries.get(digest)
        if entry and entry[0] > time.monotonic():
            return entry[1]
        return None

    def put(self, raw: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.max_size:
                self._entries.clear()
            self._entries[hash_key(raw)] = (time.monotonic() + self.ttl, principal)

    def refused(self, raw: str) -> bool:
        """Whether ``raw`` was found invalid within the last ``ttl`` seconds."""
        with self._lock:
            until = self._refused.get(hash_key(raw))
        return until is not None and until > time.monotonic()

    def refuse(self, raw: str) -> None:
        """Remember that ``raw`` names no valid key (not at all when ``ttl`` is 0)."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._refused) >= self.max_size:
                self._refused.clear()
            self._refused[hash_key(raw)] = time.monotonic() + self.ttl

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._refused.clear()
