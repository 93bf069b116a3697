"""Standard Webhooks signing: the spec's test vector, rotation, tolerance, tampering."""

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.webhook_signing import (
    generate_secret,
    secret_key,
    sign,
    signature_header,
    signed_headers,
    verify,
)

# From the Standard Webhooks reference libraries' tests.
VECTOR = dict(secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
              msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330,
              body='{"test": 2432232314}')
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_spec_test_vector():
    assert sign(**VECTOR) == VECTOR_SIGNATURE
    headers = {"webhook-id": VECTOR["msg_id"], "webhook-timestamp": str(VECTOR["timestamp"]),
               "webhook-signature": VECTOR_SIGNATURE}
    assert verify(VECTOR["secret"], headers, VECTOR["body"], now=VECTOR["timestamp"] + 10)


def test_generated_secrets_are_whsec_base64_of_24_to_64_bytes():
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32 == len(secret_key(secret))
    assert len(secret_key(generate_secret(24))) == 24
    assert generate_secret() != generate_secret()
    with pytest.raises(ValueError):
        generate_secret(16)
    with pytest.raises(ValueError):
        secret_key("whsec_not base64!")


def test_the_reference_library_verifies_our_headers():
    secret, body = generate_secret(), '{"type":"task.completed","data":{"ü":1}}'.encode()
    headers = signed_headers([secret], "msg_1", int(time.time()), body)
    assert StandardWebhook(secret).verify(body, headers) == {"type": "task.completed",
                                                              "data": {"ü": 1}}
    assert verify(secret, headers, body)


def test_rotation_sends_one_signature_per_secret_and_either_verifies():
    old, new, body, now = generate_secret(), generate_secret(), b"{}", int(time.time())
    header = signature_header([new, old], "msg_2", now, body)
    assert len(header.split(" ")) == 2 and all(s.startswith("v1,") for s in header.split(" "))
    headers = {"Webhook-Id": "msg_2", "Webhook-Timestamp": str(now), "Webhook-Signature": header}
    for secret in (old, new):
        assert verify(secret, headers, body)
        StandardWebhook(secret).verify(body, headers)
    assert not verify(generate_secret(), headers, body)


def test_tampering_and_stale_or_missing_headers_fail():
    secret, body, now = generate_secret(), b'{"a":1}', int(time.time())
    headers = signed_headers([secret], "msg_3", now, body)
    assert verify(secret, headers, body)
    assert not verify(secret, headers, b'{"a":2}')
    assert not verify(secret, {**headers, "webhook-id": "msg_4"}, body)
    assert not verify(secret, {k: v for k, v in headers.items() if k != "webhook-id"}, body)
    assert not verify(secret, {**headers, "webhook-timestamp": "soon"}, body)
    assert not verify(secret, {**headers, "webhook-signature": "v2,abc"}, body)
    old = signed_headers([secret], "msg_3", now - 301, body)
    assert not verify(secret, old, body)
    assert verify(secret, old, body, tolerance=None)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(secret).verify(body, old)
