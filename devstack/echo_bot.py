"""A bot for the local stack that speaks the Botpress Messaging API integration's side of the contract.

It takes a forwarded message as the integration's webhook does (bearer token, the six fields),
answers 200 at once, and then sends its reply to the response URL, one request per bot
message, as a Botpress bot does.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import Any

import urllib3

from devstack.console import say
from devstack.servers import LocalRequestHandler, LocalServer

_FIELDS = ("userId", "messageId", "conversationId", "type", "text", "payload")
_SQUARE = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='240' height='120'%3E"
    "%3Crect width='240' height='120' fill='%232f5bd3'/%3E%3C/svg%3E"
)
_CARD = {
    "title": "Relay T-shirt",
    "subtitle": "cotton, in blue",
    "imageUrl": _SQUARE,
    "actions": [{"action": "postback", "label": "Buy", "value": "buy the t-shirt"}],
}
SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "choice": (
        "choice",
        {"text": "Which size?", "options": [{"label": s, "value": s.lower()} for s in ("S", "M", "L")]},
    ),
    "dropdown": ("dropdown", {"text": "Which colour?", "options": [{"label": c, "value": c} for c in ("red", "blue")]}),
    "image": ("image", {"imageUrl": _SQUARE, "title": "a blue square"}),
    "card": ("card", _CARD),
    "carousel": ("carousel", {"items": [_CARD, {**_CARD, "title": "Relay mug", "subtitle": "ceramic"}]}),
    "markdown": ("markdown", {"markdown": "**Markdown** comes as its text, _as is_."}),
    "location": ("location", {"latitude": 48.8584, "longitude": 2.2945, "title": "Eiffel Tower"}),
}
"""What the echo bot answers to these words instead of their echo: one message of each type, for the chat page."""


class EchoBot(LocalServer):
    path = "/"

    def __init__(self, token: str, response_url: str) -> None:
        super().__init__(0, _Request)
        self.token = token
        self.response_url = response_url
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._http = urllib3.PoolManager()
        self._sender = threading.Thread(target=self._send_replies, name="echo-bot-replies", daemon=True)
        self._sender.start()

    def take(self, message: dict[str, Any]) -> dict[str, Any]:
        """Accept a forwarded message; the reply follows, after this answer, in arrival order."""
        self._replies.put(message)
        user_id, conversation_id = _botpress_id(message["userId"]), _botpress_id(message["conversationId"])
        return {
            "message": {"id": str(uuid.uuid4()), "type": message["type"], "payload": message["payload"]},
            "user": {"id": user_id, "tags": {"id": message["userId"]}},
            "conversation": {"id": conversation_id, "tags": {"id": message["conversationId"]}},
        }

    def shutdown(self) -> None:
        self._replies.put(None)
        super().shutdown()

    def _send_replies(self) -> None:
        while (message := self._replies.get()) is not None:
            kind, payload = SAMPLES.get(message["text"].strip().lower(), ("text", {"text": f"echo: {message['text']}"}))
            reply = {
                "type": kind,
                "payload": payload,
                "conversationId": message["conversationId"],
                "botpressUserId": _botpress_id(message["userId"]),
                "botpressMessageId": str(uuid.uuid4()),
                "botpressConversationId": _botpress_id(message["conversationId"]),
            }
            try:
                status = self._http.request("POST", self.response_url, json=reply, timeout=10, retries=False).status
            except urllib3.exceptions.HTTPError as error:
                say("echo-bot", f"reply to {message['conversationId']} not sent: {error}")
                continue
            what = f"'{payload['text']}'" if kind == "text" else f"a {kind}"
            say("echo-bot", f"replied {what} to {message['conversationId']} → {status}")


def _botpress_id(tag: str) -> str:
    """The id Botpress keeps for the user or conversation it knows by this tag: the same one every time."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, tag))


class _Request(LocalRequestHandler):
    server: EchoBot

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        scheme, _, token = (self.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token != self.server.token:
            self._answer(401, {"message": "Unauthorized"})
            return
        try:
            message = json.loads(body)
            missing = [name for name in _FIELDS if not isinstance(message, dict) or name not in message]
        except ValueError:
            message, missing = None, ["a JSON body"]
        if missing:
            self._answer(400, {"message": f"missing {', '.join(missing)}"})
            return
        say("echo-bot", f"got '{message['text']}' from {message['userId']} in {message['conversationId']}")
        self._answer(200, self.server.take(message))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the bot prints what it got and what it replied."""
