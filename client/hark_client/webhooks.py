"""Verifying webhook deliveries (the Standard Webhooks scheme).

Each delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` of
``"{id}.{timestamp}.{body}"``, keyed with the base64 part of the webhook's secret
(``whsec_<base64>``). Verify the raw body bytes, before any JSON parsing::

    event = verify_webhook(request.get_data(), request.headers, secret)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from .errors import WebhookVerificationError

__all__ = ["WebhookVerificationError", "sign_webhook", "verify_webhook"]

SECRET_PREFIX = "whsec_"


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the webhook secret is not whsec_<base64>") from None
    if not key:
        raise WebhookVerificationError("the webhook secret is empty")
    return key


def _signature(key: bytes, msg_id: str, timestamp: str, payload: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign_webhook(payload: bytes | str, secret: str, msg_id: str,
                 timestamp: int | None = None) -> dict[str, str]:
    """The headers a sender attaches to ``payload`` (useful in tests of your receiver)."""
    body = payload.encode() if isinstance(payload, str) else payload
    stamp = str(int(time.time()) if timestamp is None else int(timestamp))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + _signature(_key(secret), msg_id, stamp, body),
    }


def verify_webhook(payload: bytes | str, headers: Mapping[str, str], secret: str,
                   tolerance: float = 300) -> Any:
    """Check a delivery's signature and age; return its decoded JSON body.

    Raises :class:`WebhookVerificationError` if a header is missing, the timestamp is more
    than ``tolerance`` seconds from now (a replay), no ``v1`` signature matches, or the
    body is not JSON.
    """
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    lowered = {str(k).lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time") from None
    if abs(time.time() - sent) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    expected = _signature(_key(secret), msg_id, timestamp, body).encode()
    matched = False
    for entry in signatures.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            matched = True  # no early exit: the time taken does not depend on the match
    if not matched:
        raise WebhookVerificationError("no webhook-signature matches the payload")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the webhook body is not JSON") from None
