"""The relay in-process: the template's resources on moto, its handlers loaded as Lambda loads them."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import boto3
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Request
from werkzeug import Response as HttpResponse

if TYPE_CHECKING:
    from devstack.esm import EventSourceMapping
    from devstack.lambdas import LocalFunction
    from devstack.provision import Stack

BOT_TOKEN = "bp_pat_test_token"
BOT_TIMEOUT_SECONDS = 5
"""Long enough for a bot on a busy 2-core machine; the tests of a hung bot set their own (1 s)."""
RETRY_SCHEDULE = "1,2"
MAX_ATTEMPTS = 3


def local_server(*, threaded: bool = False) -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1, for a fixture to yield from; `threaded` takes requests at once."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=threaded)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def fresh(server: HTTPServer) -> Iterator[HTTPServer]:
    """A long-lived server as a new one for one test: no handlers, nothing logged, before and after it."""
    server.clear()
    yield server
    server.clear()


def scripted(server: HTTPServer, answers: dict[str, list[tuple[int, str]]], path: str = "/hook") -> str:
    """A receiver answering each response (by its text) as scripted, (status, body) a time, then 204; its URL."""

    def answer(request: Request) -> HttpResponse:
        text = json.loads(request.get_data())["payload"]["text"]
        status, body = answers[text].pop(0) if answers.get(text) else (204, "")
        return HttpResponse(body, status=status)

    server.expect_request(path, method="POST").respond_with_handler(answer)
    return server.url_for(path)


@dataclass
class Attempt:
    at: float
    webhook_id: str
    conversation: str
    text: str
    status: int
    started: float = 0.0
    headers: dict[str, str] | None = None
    body: bytes = b""


@dataclass
class Refusal:
    """How the receiver answers one response (by its text) for its first `times` attempts."""

    times: int
    status: int = 500
    headers: dict[str, str] | None = None


class Receiver:
    """A client's webhook on a real HTTP server. Every delivery is verified with the reference Standard Webhooks
    library and the secret of the client it names (a forged one gets 400 and is kept in `unverified`); the
    conversations told to `fail` get 500.
    """

    def __init__(self, server: HTTPServer, secret_of: dict[str, str], path: str = "/hook", pause: float = 0.0) -> None:
        self.url = server.url_for(path)
        self.attempts: list[Attempt] = []
        self.unverified: list[str] = []
        self._secret_of = secret_of
        self._pause = pause
        self._failing: dict[str, tuple[int, Callable[[], bool]]] = {}
        self._refusals: dict[str, Refusal] = {}
        self._lock = threading.Lock()
        server.expect_request(path, method="POST").respond_with_handler(self._take)

    def fail(self, conversation: str, times: int, until: Callable[[], bool] = lambda: True) -> Receiver:
        """Answer 500 to the conversation's first `times` attempts, and to any after them until `until()`."""
        self._failing[conversation] = (times, until)
        return self

    def refuse(self, text: str, times: int, status: int = 500, headers: dict[str, str] | None = None) -> Receiver:
        """Answer `status` (with `headers`) to the first `times` attempts of the response whose text is `text`."""
        self._refusals[text] = Refusal(times, status, headers)
        return self

    def most_at_once(self) -> int:
        """The largest number of deliveries the receiver was handling at the same moment."""
        edges = sorted([(a.started, 1) for a in self.attempts] + [(a.at, -1) for a in self.attempts])
        return max(itertools.accumulate(change for _, change in edges), default=0)

    def tries(self, text: str) -> list[Attempt]:
        """Every attempt of the response whose text is `text`, in order."""
        return [a for a in self.attempts if a.text == text]

    def delivered(self, conversation: str) -> list[str]:
        return [a.text for a in self.attempts if a.conversation == conversation and a.status == 204]

    def wait_for(self, conversations: dict[str, int], timeout: float = 60.0) -> None:
        """Until each conversation has its count of deliveries; fails naming what is missing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(self.delivered(c)) >= n for c, n in conversations.items()):
                return
            time.sleep(0.05)
        missing = {c: f"{len(self.delivered(c))}/{n}" for c, n in conversations.items() if len(self.delivered(c)) < n}
        raise AssertionError(f"not delivered within {timeout} s: {missing}; unverified: {self.unverified}")

    def _take(self, request: Request) -> HttpResponse:
        data = request.get_data()
        try:
            body = json.loads(data)
            Webhook(self._secret_of[body["clientId"]]).verify(data, dict(request.headers))
        except Exception as error:
            self.unverified.append(f"{error!r}: {data!r}")
            return HttpResponse(status=400)
        started = time.monotonic()
        time.sleep(self._pause)
        conversation, text = body["conversationId"], body["payload"]["text"]
        with self._lock:
            tried = sum(1 for attempt in self.attempts if attempt.conversation == conversation)
            times, until = self._failing.get(conversation, (0, lambda: True))
            status, headers = 500 if tried < times or not until() else 204, None
            refusal = self._refusals.get(text)
            if refusal and len(self.tries(text)) < refusal.times:
                status, headers = refusal.status, refusal.headers
            self.attempts.append(
                Attempt(
                    time.monotonic(),
                    request.headers["webhook-id"],
                    conversation,
                    text,
                    status,
                    started,
                    dict(request.headers),
                    data,
                )
            )
        return HttpResponse(status=status, headers=headers)


class _OnFirstUse[T]:
    """A Relay's attribute made when a test first reads it: most tests use two or three of the six functions, and
    importing a function's handler (a container's cold start) was a large part of each test's set-up. A test may
    replace it (a function with other settings) by assigning to it."""

    def __init__(self, make: Callable[[Relay], T]) -> None:
        self._make = make
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, relay: Relay, owner: type | None = None) -> T:
        with relay._making:  # once, whichever thread reads it first (a long poll waits while others invoke)
            if self._name not in relay.__dict__:
                relay.__dict__[self._name] = self._make(relay)
        made: T = relay.__dict__[self._name]
        return made


def _function(name: str) -> _OnFirstUse[LocalFunction]:
    def make(relay: Relay) -> LocalFunction:
        from devstack.lambdas import LocalFunction

        return LocalFunction(relay.stack.functions[name])

    return _OnFirstUse(make)


def _mapping(function: Callable[[Relay], LocalFunction]) -> _OnFirstUse[EventSourceMapping]:
    def make(relay: Relay) -> EventSourceMapping:
        from devstack.esm import EventSourceMapping

        return EventSourceMapping(relay.sqs, function(relay))

    return _OnFirstUse(make)


_provisioned: dict[str, tuple[Stack, list[tuple[Any, str, str, Any]]]] = {}
"""Per template, parameters and secrets: the stack as provisioned, and moto's resources right after."""


def provisioned(parameters: dict[str, str], secret_values: dict[str, str], session: boto3.Session) -> Stack:
    """The template's resources on a fresh moto, as devstack.provision makes them. Provisioned through the AWS API
    once per template and parameters in this process; every later test's moto gets a copy of the resources then
    made: a third of a second of CPU per test, most of an integration test's set-up."""
    from moto.core.base_backend import BackendDict

    from devstack import provision

    template = provision.load()  # type: ignore[attr-defined]  # the template provision reads (a test may replace it)
    key = hashlib.sha256(json.dumps([template, parameters, secret_values], sort_keys=True).encode()).hexdigest()
    fresh = not BackendDict._instances  # else this test made resources of its own first: provisioned beside them
    if fresh and key in _provisioned:
        stack, made = _provisioned[key]
        for services, account, region, resources in made:
            dict.__setitem__(services[account], region, _copy(resources))
        return copy.deepcopy(stack)
    stack = provision.provision(parameters, dict(secret_values), session)
    if fresh:
        made = [
            (services, account, region, _copy(resources))
            for services in BackendDict._instances
            for account, regions in services.items()
            for region, resources in regions.items()
        ]
        _provisioned[key] = (copy.deepcopy(stack), made)
    return stack


def _copy(resources: Any) -> Any:
    """A copy of one service's resources in an account and region; an SQS queue's lock is not copied but made anew."""
    memo: dict[int, Any] = {
        id(queue._messages_lock): threading.Condition() for queue in getattr(resources, "queues", {}).values()
    }
    return copy.deepcopy(resources, memo)


class Relay:
    """The deployed system, in-process: the template's resources on moto, its six functions (each loaded when first
    used), their event sources."""

    inbound = _function("InboundFunction")
    bot_response = _function("BotResponseFunction")
    delivery = _function("DeliveryFunction")
    responses_log = _function("ResponsesLogFunction")
    stream_socket = _function("StreamSocketFunction")
    stream = _function("StreamFunction")
    mapping = _mapping(lambda relay: relay.delivery)
    log_mapping = _mapping(lambda relay: relay.responses_log)
    stream_mapping = _mapping(lambda relay: relay.stream)

    def __init__(self, session: boto3.Session, bot: HTTPServer, parameters: dict[str, str] | None = None) -> None:
        from relay.stores.clients import ClientStore
        from relay.stores.responses_log import ResponsesLog

        self._making = threading.RLock()
        self.bot = bot
        self.stack = provisioned(
            {
                "BotWebhookUrl": bot.url_for("/webhook"),
                "BotTimeoutSeconds": str(BOT_TIMEOUT_SECONDS),
                "DeliveryRetrySchedule": RETRY_SCHEDULE,
                "DeliveryMaxAttempts": str(MAX_ATTEMPTS),
                **(parameters or {}),
            },
            {"BotTokenSecret": BOT_TOKEN},
            session,
        )
        self.session = session
        self.sqs = session.client("sqs")
        self.clients = ClientStore(session.client("dynamodb"), self.stack.ref("ClientsTable"))
        self.log = ResponsesLog(session.client("dynamodb"), self.stack.ref("ResponsesTable"))
        self.bot_secret = self.stack.secret_values["BotResponseSecret"]

    # ── clients ──
    def add_client(self, client_id: str = "acme", response_url: str | None = None) -> tuple[Any, str]:
        return self.clients.register(client_id, f"{client_id} back end", response_url)

    # ── HTTP routes, through the handlers ──
    def post_message(
        self, token: str | None, body: Any, headers: dict[str, str] | None = None, query: str = ""
    ) -> Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"content-type": "application/json", **_bearer(token)}
        return self._call(self.inbound, "/messages", raw, {**all_headers, **(headers or {})}, query)

    def get_responses(self, token: str | None, conversation: str, **query: Any) -> Response:
        """GET /conversations/{conversation}/responses with `query` (after, wait, limit) as given."""
        path = f"/conversations/{quote(conversation, safe='')}/responses"
        return self._call(self.inbound, path, b"", _bearer(token), urlencode(query), method="GET")

    def mint_token(self, token: str | None, conversation: str, body: Any) -> Response:
        """POST /conversations/{conversation}/tokens."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        path = f"/conversations/{quote(conversation, safe='')}/tokens"
        return self._call(self.inbound, path, raw, {"content-type": "application/json", **_bearer(token)})

    def refresh_token(self, token: str | None) -> Response:
        return self._call(self.inbound, "/tokens/refresh", b"", _bearer(token))

    def call(self, method: str, path: str, token: str | None, body: Any = None, **query: Any) -> Response:
        """Any client API route: `body` as JSON (bytes as they are), `query` as given."""
        if body is None:
            return self._call(self.inbound, path, b"", _bearer(token), urlencode(query), method=method)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json", **_bearer(token)}
        return self._call(self.inbound, path, raw, headers, urlencode(query), method=method)

    # ── the stream's WebSocket API, through its handler ──
    def socket(self, route_key: str, connection_id: str, query: dict[str, str] | None = None, body: str = "") -> Any:
        """A WebSocket event of `route_key` ($connect with `query`, $disconnect, $default with `body`)."""
        from devstack.lambdas import websocket_event

        return self.stream_socket.invoke(websocket_event(route_key, connection_id, query, body))

    def post_bot_response(self, body: Any, secret: str | None = None) -> Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        path = f"/bot/responses/{self.bot_secret if secret is None else secret}"
        return self._call(self.bot_response, path, raw, {"content-type": "application/json"})

    def _call(
        self, function: Any, path: str, body: bytes, headers: dict[str, str], query: str = "", method: str = "POST"
    ) -> Response:
        from devstack.lambdas import api_response, http_event, path_parameters

        route = next(r for m, r in function.spec.http_routes if m == method and path_parameters(r, path) is not None)
        event = http_event(method, route, path, headers, body, query)
        status, response_headers, raw = api_response(function.invoke(event))
        return Response(status, {k.lower(): v for k, v in response_headers.items()}, raw)

    def say(self, token: str, conversation: str, *texts: str) -> list[str]:
        """A message in the conversation, and the bot's responses `texts` to it; returns their webhook-ids."""
        self.post_message(token, message(conversation))
        forwarded = self.forwarded()[-1]
        ids = []
        for text in texts:
            botpress_id = str(uuid.uuid4())
            body = {"type": "text", "payload": {"text": text}, "conversationId": forwarded["conversationId"]}
            assert self.post_bot_response({**body, "botpressMessageId": botpress_id}).status == 200
            ids.append(f"msg_{botpress_id}")
        return ids

    # ── the bot's side ──
    def forwarded(self) -> list[dict[str, Any]]:
        """What the bot received, in order."""
        return [json.loads(request.get_data()) for request, _ in self.bot.log if request.path == "/webhook"]

    def reply(self, forwarded: dict[str, Any], count: int = 1, kind: str = "text") -> list[dict[str, Any]]:
        """The bot answering a forwarded message with `count` messages, one request each, as Botpress does."""
        replies = []
        for index in range(count):
            body = {
                "type": kind,
                "payload": {"text": f"reply {index + 1} to {forwarded['text']}"},
                "conversationId": forwarded["conversationId"],
                "botpressUserId": "bp-user-1",
                "botpressMessageId": str(uuid.uuid4()),
                "botpressConversationId": "bp-conv-1",
            }
            response = self.post_bot_response(body)
            assert response.status == 200, response.text
            replies.append(body)
        return replies

    # ── delivery ──
    def drain(self, timeout: float = 15.0) -> None:
        """Poll the delivery queue as Lambda does until nothing is left in it, visible or in flight."""
        self._drain(self.mapping, self.delivery, timeout)

    def record(self, timeout: float = 15.0) -> None:
        """Poll the responses log's queue as Lambda does until nothing is left in it."""
        self._drain(self.log_mapping, self.responses_log, timeout)

    def send_stream(self, timeout: float = 15.0) -> None:
        """Poll the stream queue as Lambda does until nothing is left in it."""
        self._drain(self.stream_mapping, self.stream, timeout)

    def _drain(self, mapping: Any, function: Any, timeout: float) -> None:
        url = function.spec.queue_url
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if mapping.poll() == 0:
                if self.queue_depth(url) == 0:
                    return
                time.sleep(0.2)
        raise AssertionError(f"{url} not drained within {timeout} s")

    def queue_depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def logged(self, client_id: str, conversation: str) -> list[str]:
        """The texts the responses log holds for the conversation, in its order."""
        return [entry.response()["payload"]["text"] for entry in self.log.after(client_id, conversation, 0, 100)]

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.stack.ref("DeliveryDeadLetterQueue"), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.text[:200]}>"


def _bearer(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def message(conversation: str = "conv-1", message_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A valid inbound message; override any field."""
    return {
        "userId": "user-1",
        "messageId": message_id or str(uuid.uuid4()),
        "conversationId": conversation,
        "type": "text",
        "text": "hello",
        "payload": {"text": "hello"},
        **fields,
    }
