"""Signatures that the Standard Webhooks reference library accepts, and only those."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from relay import signing


def test_signed_headers_verify_with_the_reference_library() -> None:
    secret = signing.new_secret()
    body = '{"type":"text","payload":{"text":"héllo"}}'
    headers = signing.headers(secret, "msg_1", int(time.time()), body)

    assert Webhook(secret).verify(body, headers) == {"type": "text", "payload": {"text": "héllo"}}
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s, h, b: (signing.new_secret(), h, b),
        lambda s, h, b: (s, {**h, "webhook-id": "msg_2"}, b),
        lambda s, h, b: (s, h, b.replace("1", "2")),
    ],
    ids=["other secret", "other id", "other body"],
)
def test_anything_changed_fails_verification(tamper) -> None:
    secret = signing.new_secret()
    body = '{"n":1}'
    headers = signing.headers(secret, "msg_1", int(time.time()), body)
    secret, headers, body = tamper(secret, headers, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_secrets_are_fresh_and_in_whsec_format() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_") and first != second
