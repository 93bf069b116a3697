"""Webhook verification: signed here with hmac (and by the server's signer), then verified."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from hark_client import WebhookVerificationError, sign_webhook, verify_webhook

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = json.dumps({"type": "task.completed", "data": {"id": "t-1"}}).encode()


def signed(body: bytes = BODY, key: bytes = KEY, msg_id: str = "msg_1",
           timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode()}


def test_valid_delivery_verifies_and_decodes():
    assert verify_webhook(BODY, signed(), SECRET) == json.loads(BODY)
    titled = {k.title(): v for k, v in signed().items()}  # header names in any case
    assert verify_webhook(BODY.decode(), titled, SECRET)["data"]["id"] == "t-1"


def test_any_matching_signature_of_several_is_enough():
    headers = signed()
    headers["webhook-signature"] = "v1,AAAA v2,zzz " + headers["webhook-signature"]
    assert verify_webhook(BODY, headers, SECRET)


@pytest.mark.parametrize("case", ["tampered body", "wrong secret", "old", "future",
                                  "missing header", "other version", "bad timestamp"])
def test_rejected(case):
    headers, body, secret = signed(), BODY, SECRET
    if case == "tampered body":
        body = BODY.replace(b"t-1", b"t-2")
    elif case == "wrong secret":
        secret = "whsec_" + base64.b64encode(b"another key of thirty-two bytes!").decode()
    elif case == "old":
        headers = signed(timestamp=int(time.time()) - 301)
    elif case == "future":
        headers = signed(timestamp=int(time.time()) + 301)
    elif case == "missing header":
        del headers["webhook-id"]
    elif case == "other version":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    elif case == "bad timestamp":
        headers["webhook-timestamp"] = "yesterday"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, secret)


def test_tolerance_is_configurable():
    headers = signed(timestamp=int(time.time()) - 1000)
    assert verify_webhook(BODY, headers, SECRET, tolerance=2000)


def test_secret_must_be_base64():
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, signed(), "whsec_not base64!")


def test_sign_webhook_round_trips_and_matches_the_servers_signer():
    headers = sign_webhook(BODY, SECRET, "msg_9")
    assert verify_webhook(BODY, headers, SECRET)
    signing = pytest.importorskip("core.webhook_signing")
    server_headers = signing.signed_headers([SECRET], "msg_9", int(time.time()), BODY)
    assert verify_webhook(BODY, server_headers, SECRET)
    assert signing.verify(SECRET, headers, BODY)
