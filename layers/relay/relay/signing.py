"""Standard Webhooks signing (https://www.standardwebhooks.com): what a receiver verifies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks format: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: `v1,` and the HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(signing_secrets: str | Sequence[str], webhook_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The Standard Webhooks headers; with several secrets (a rotation's grace period), one signature for each,
    separated by a space as the specification allows, so a receiver holding any one of them verifies.
    """
    keys = [signing_secrets] if isinstance(signing_secrets, str) else signing_secrets
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, webhook_id, timestamp, body) for key in keys),
    }
