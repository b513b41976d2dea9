"""The tests' own bot and client receiver, real HTTP servers on 127.0.0.1 the local stack talks to."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Request, Response

from relay import webhooks
from stack_process import post_json

CLIENT_TOKEN = "e2e." + secrets.token_urlsafe(24)
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


@dataclass
class Delivery:
    conversation_id: str
    text: str
    webhook_id: str
    status: int


class Receiver:
    """A client's webhook: verifies every delivery with the reference Standard Webhooks library, and answers
    500 to the conversations it was told to `fail`."""

    def __init__(self, server: HTTPServer) -> None:
        self.url = server.url_for("/responses")
        self.attempts: list[Delivery] = []
        self.unverified: list[str] = []
        self._failing: dict[str, tuple[int, Callable[[], bool]]] = {}
        self._lock = threading.Lock()
        server.expect_request("/responses", method="POST").respond_with_handler(self._take)

    def _take(self, request: Request) -> Response:
        try:
            body = Webhook(WEBHOOK_SECRET).verify(request.get_data(), dict(request.headers))
        except Exception as error:
            self.unverified.append(f"{error}: {request.get_data()!r}")
            return Response(status=400)
        conversation = body["conversationId"]
        with self._lock:
            tried = sum(1 for attempt in self.attempts if attempt.conversation_id == conversation)
            times, until = self._failing.get(conversation, (0, lambda: True))
            status = 500 if tried < times or not until() else 204
            self.attempts.append(Delivery(conversation, body["payload"]["text"], request.headers["webhook-id"], status))
        return Response(status=status)

    def fail(self, conversation: str, times: int, until: Callable[[], bool]) -> None:
        """Answer 500 to the conversation's first `times` attempts, and to any after them until `until()`."""
        self._failing[conversation] = (times, until)

    def delivered(self, conversation: str) -> list[str]:
        return [a.text for a in self.attempts if a.conversation_id == conversation and a.status == 204]

    def wait_for(self, conversations: dict[str, int], timeout: float = 60.0) -> None:
        """Until each conversation has its count of deliveries; fails naming what is missing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(self.delivered(c)) >= n for c, n in conversations.items()):
                return
            time.sleep(0.05)
        missing = {c: f"{len(self.delivered(c))}/{n}" for c, n in conversations.items() if len(self.delivered(c)) < n}
        raise AssertionError(f"not delivered within {timeout} s: {missing}; unverified: {self.unverified}")
