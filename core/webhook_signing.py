"""Signing webhook messages as the Standard Webhooks spec says (standardwebhooks.com).

A message is three headers and a body. The signature is an HMAC-SHA256 over
``"{webhook-id}.{webhook-timestamp}.{body}"`` keyed with the secret's base64-decoded part
after ``whsec_``, sent as ``v1,<base64>``. Several signatures (during a secret rotation)
are separated by spaces; a receiver accepts the message if any one matches.

Pure functions with no platform imports: the client SDK reuses them as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import datetime

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300  # seconds a timestamp may be off, either way


def generate_secret(nbytes: int = 32) -> str:
    """A new secret: ``whsec_`` and the base64 of ``nbytes`` (24 to 64) random bytes."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret needs 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key of ``secret``: raw bytes, or ``whsec_<base64>`` decoded."""
    if isinstance(secret, bytes):
        key = secret
    else:
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def _timestamp(value: int | float | datetime) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str | bytes, msg_id: str, timestamp: int | float | datetime,
         body: bytes | str) -> str:
    """One signature, ``v1,<base64 HMAC-SHA256 of "msg_id.timestamp.body">``."""
    signed = f"{msg_id}.{_timestamp(timestamp)}.".encode() + _bytes(body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(all_secrets: Iterable[str | bytes], msg_id: str,
                     timestamp: int | float | datetime, body: bytes | str) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in all_secrets)


def signed_headers(all_secrets: Iterable[str | bytes], msg_id: str,
                   timestamp: int | float | datetime, body: bytes | str) -> dict[str, str]:
    """The three Standard Webhooks headers for one send of a message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(_timestamp(timestamp)),
        "webhook-signature": signature_header(all_secrets, msg_id, timestamp, body),
    }


def verify(secret: str | bytes, headers: Mapping[str, str], body: bytes | str,
           tolerance: float | None = DEFAULT_TOLERANCE, *, now: float | None = None) -> bool:
    """True if ``body`` with ``headers`` was signed with ``secret`` and is recent enough.

    ``headers`` is any mapping (names compared case-insensitively). ``tolerance`` is how
    many seconds the timestamp may differ from ``now``; ``None`` skips that check.
    """
    lowered = {str(k).lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if tolerance is not None and abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1].encode()
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == SIGNATURE_VERSION and hmac.compare_digest(value.encode(), expected):
            return True
    return False
