"""The tests' own bot, a real HTTP server on 127.0.0.1 the local stack forwards to, and the ids they share."""

from __future__ import annotations

import secrets
import threading

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from relay import webhooks
from stack_process import post_json

CLIENT_ID = "e2e"
CLIENT_TOKEN = f"{CLIENT_ID}.{secrets.token_urlsafe(24)}"
WEBHOOK_SECRET = webhooks.new_secret()
BOT_TOKEN = secrets.token_urlsafe(24)
BOT_SECRET = secrets.token_urlsafe(18)


class Bot:
    """A bot behind the Messaging API integration: it takes each forwarded message, then answers it through
    the response URL with as many messages as the payload's `replies` asks (default 1), one request each, in order.
    """

    def __init__(self, server: HTTPServer) -> None:
        self.url = server.url_for("/webhook")
        self.response_url = ""
        self.forwarded: list[dict] = []
        self.authorizations: list[str] = []
        self.reply_failures: list[str] = []
        server.expect_request("/webhook", method="POST").respond_with_handler(self._take)

    def forwarded_ids(self) -> list[str]:
        return [message["messageId"] for message in self.forwarded]

    def _take(self, request: Request) -> Response:
        self.authorizations.append(request.headers.get("authorization", ""))
        message = request.get_json()
        self.forwarded.append(message)
        threading.Thread(target=self._answer, args=(message,), daemon=True).start()
        return Response('{"message":{"id":"bp-msg"}}', 200, content_type="application/json")

    def _answer(self, message: dict) -> None:
        for index in range(int(message["payload"].get("replies", 1))):
            reply = {
                "type": "text",
                "payload": {"text": f"{message['text']} #{index + 1}"},
                "conversationId": message["conversationId"],
                "botpressUserId": "bp-user",
                "botpressMessageId": secrets.token_hex(8),
                "botpressConversationId": "bp-conversation",
            }
            status, body = post_json(self.response_url, reply)
            if status != 200:
                self.reply_failures.append(f"{status} {body}")
