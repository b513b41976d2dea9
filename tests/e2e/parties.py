"""The tests' own bot, a real HTTP server on 127.0.0.1 the local stack forwards to, and the ids they share."""

from __future__ import annotations

import contextlib
import io
import secrets
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from relay import signing
from relay_clients.cli import main
from stack_process import ROOT, StackProcess, get_json, post_json

CLIENT_ID = "e2e"
CLIENT_TOKEN = f"{CLIENT_ID}.{secrets.token_urlsafe(24)}"
WEBHOOK_SECRET = signing.new_secret()
BOT_TOKEN = secrets.token_urlsafe(24)
BOT_SECRET = secrets.token_urlsafe(18)


def send(
    stack: StackProcess,
    conversation: str,
    text: str = "hello",
    replies: int = 1,
    token: str = CLIENT_TOKEN,
    query: str = "",
    **fields: Any,
) -> tuple[int, Any]:
    """POST /messages (with `query`, e.g. "wait=5") as a client; the bot answers with `replies` messages."""
    message = {
        "userId": "user-1",
        "messageId": str(uuid.uuid4()),
        "conversationId": conversation,
        "type": "text",
        "text": text,
        "payload": {"text": text, "replies": replies},
        **fields,
    }
    url = f"{stack.api_url}/messages" + (f"?{query}" if query else "")
    return post_json(url, message, {"authorization": f"Bearer {token}"})


def relay_clients(stack: StackProcess, *argv: str) -> str:
    """`relay-clients --dev ARGV` as the banner shows it, run where the stack runs; what it printed."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("PORT", stack.api_url.rpartition(":")[2])
        patch.chdir(ROOT)
        status = main(["--dev", *argv])
    assert status == 0, f"relay-clients {' '.join(argv)}: exit status {status}; {printed.getvalue()}"
    return printed.getvalue()


def conversation() -> str:
    return f"conversation-{uuid.uuid4().hex[:8]}"


def responses(stack: StackProcess, chat: str, token: str = CLIENT_TOKEN, **query: Any) -> tuple[int, Any]:
    """GET /conversations/{chat}/responses as a client, with `query` (after, wait, limit)."""
    url = f"{stack.api_url}/conversations/{quote(chat, safe='')}/responses" + (f"?{urlencode(query)}" if query else "")
    return get_json(url, {"authorization": f"Bearer {token}"} if token else {})


class Bot:
    """A bot behind the Messaging API integration: it takes each forwarded message, then answers it through
    the response URL with as many messages as the payload's `replies` asks (default 1), one request each, in order,
    `gap` seconds apart. When the payload asks for `late`, it then says one more thing ("late") unless the test
    sets the conversation's `hold` within 10 s.
    """

    def __init__(self, server: HTTPServer) -> None:
        self.url = server.url_for("/webhook")
        self.response_url = ""
        self.forwarded: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.reply_failures: list[str] = []
        self.last_reply_at: dict[str, float] = {}
        """When the bot's last response to each conversation was taken (its POST answered), time.monotonic()."""
        self._holds: dict[str, threading.Event] = {}
        server.expect_request("/webhook", method="POST").respond_with_handler(self._take)

    def hold(self, conversation: str) -> threading.Event:
        """Set once the client has its answer; until then (10 s at most) the bot keeps back its late reply."""
        return self._holds.setdefault(conversation, threading.Event())

    def forwarded_ids(self) -> list[str]:
        return [message["messageId"] for message in self.forwarded]

    def _take(self, request: Request) -> Response:
        self.authorizations.append(request.headers.get("authorization", ""))
        message = request.get_json()
        self.forwarded.append(message)
        threading.Thread(target=self._answer, args=(message,), daemon=True).start()
        return Response('{"message":{"id":"bp-msg"}}', 200, content_type="application/json")

    def _answer(self, message: dict[str, Any]) -> None:
        conversation = message["conversationId"].partition(":")[2]
        count = int(message["payload"].get("replies", 1))
        for index in range(count):
            if index:
                time.sleep(float(message["payload"].get("gap", 0)))
            self._reply(message, f"{message['text']} #{index + 1}", conversation)
        if message["payload"].get("late") and not self.hold(conversation).wait(10):
            self._reply(message, "late", conversation)

    def _reply(self, message: dict[str, Any], text: str, conversation: str) -> None:
        reply = {
            "type": "text",
            "payload": {"text": text},
            "conversationId": message["conversationId"],
            "botpressUserId": "bp-user",
            "botpressMessageId": secrets.token_hex(8),
            "botpressConversationId": "bp-conversation",
        }
        status, body = post_json(self.response_url, reply)
        self.last_reply_at[conversation] = time.monotonic()
        if status != 200:
            self.reply_failures.append(f"{status} {body}")
