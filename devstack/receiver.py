"""The demo client's back end for the local stack: prints each delivery and whether its signature verified."""

from __future__ import annotations

import json
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from devstack.console import say
from devstack.servers import LocalRequestHandler, LocalServer


class Receiver(LocalServer):
    path = "/responses"

    def __init__(self, webhook_secret: str) -> None:
        super().__init__(0, _Request)
        # The reference Standard Webhooks library, as a client would verify with it.
        self.webhook = Webhook(webhook_secret)


class _Request(LocalRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            response = self.server.webhook.verify(body, dict(self.headers.items()))
            verdict = "signature verified"
        except WebhookVerificationError as error:
            response, verdict = _json_or_text(body), f"SIGNATURE NOT VERIFIED ({error})"
        except ValueError:
            response, verdict = _json_or_text(body), "SIGNATURE NOT VERIFIED (malformed headers)"
        summary = _summary(response)
        say("receiver", f"{self.headers.get('webhook-id')} · {verdict}\n{summary}")
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: each delivery is printed once, by do_POST."""


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def _summary(response: Any) -> str:
    if not isinstance(response, dict):
        return repr(response)[:200]
    payload = response.get("payload")
    content = payload.get("text") if isinstance(payload, dict) and "text" in payload else json.dumps(payload)
    return f"conversation {response.get('conversationId')} ({response.get('userId')}): {response.get('type')} {content}"
