"""POST /messages as a client sees it: repeats, scoping, authentication, bad input and an unreliable bot."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request
from werkzeug import Response as WerkzeugResponse

from devstack.lambdas import api_response, http_event
from harness import BOT_TIMEOUT_SECONDS, Relay, local_server, message
from relay.flows.inbound import FORWARD_MARGIN_SECONDS
from relay.settings import InboundSettings
from relay.stores.clients import Rotation, hash_token, new_token

MAX_BODY_BYTES = InboundSettings.model_fields["max_body_bytes"].default


# ── helpers ──────────────────────────────────────────────────────────────────────────────


def table_items(aws: boto3.Session, relay: Relay, logical_id: str) -> list[dict[str, Any]]:
    return aws.client("dynamodb").scan(TableName=relay.stack.ref(logical_id))["Items"]


def assert_nothing_forwarded_or_stored(relay: Relay, aws: boto3.Session) -> None:
    assert relay.forwarded() == []
    assert table_items(aws, relay, "ConversationsTable") == []
    assert table_items(aws, relay, "IdempotencyTable") == []


def error_fields(response: Any) -> list[str]:
    return [problem["field"] for problem in response.json().get("errors", [])]


def assert_refused(response: Any, status: int, field: str | None = None) -> None:
    """A client error with a JSON body whose message (and errors, for 422) names the bad field."""
    assert response.status == status, response
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body.get("message"), str)
    assert body["message"]
    if field is not None:
        assert field in error_fields(response), body
        assert field in body["message"], body


def without(field: str) -> dict[str, Any]:
    """A valid message less one field."""
    body = message()
    del body[field]
    return body


def sized_message(total_bytes: int) -> bytes:
    """A valid message whose JSON body is exactly `total_bytes` long."""
    body = message(message_id="big", text="x")
    base = len(json.dumps(body).encode())
    body["text"] = "x" * (total_bytes - base + 1)
    raw = json.dumps(body).encode()
    assert len(raw) == total_bytes
    return raw


# ── a bot whose behaviour the test switches ──────────────────────────────────────────────


HANG_SECONDS = 30
"""How long a hanging bot holds a request unless released: far beyond the relay's 1 s bot timeout, so a test
can tell that the relay gave up on its own on however busy a machine, without timing it."""


class ScriptedBot:
    """The bot's webhook: answers 200 ("ok"), 500 ("fail"), or no answer until released ("hang")."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.entered = threading.Event()
        self.released = threading.Event()
        self.hung_requests_answered = 0

    def __call__(self, request: Request) -> WerkzeugResponse:
        if self.mode == "fail":
            return WerkzeugResponse('{"message":"Internal Error"}', status=500, content_type="application/json")
        if self.mode == "hang":
            self.entered.set()
            self.released.wait(timeout=HANG_SECONDS)
            self.hung_requests_answered += 1
        return WerkzeugResponse(json.dumps({"message": {"id": "bp-msg"}}), status=200, content_type="application/json")


@pytest.fixture
def scripted_bot(bot: HTTPServer) -> Iterator[ScriptedBot]:
    script = ScriptedBot()
    bot.expect_request("/webhook", method="POST").respond_with_handler(script)
    yield script
    script.released.set()  # let a hanging request finish so the server can stop


@pytest.fixture
def unreliable_relay(aws: boto3.Session, bot: HTTPServer, scripted_bot: ScriptedBot) -> Relay:
    return Relay(aws, bot, {"BotTimeoutSeconds": "1"})  # a hung bot is given up on after 1 s


@pytest.fixture
def other_receiver() -> Iterator[HTTPServer]:
    """A second client's webhook receiver."""
    yield from local_server()


# ── repeats and scoping ──────────────────────────────────────────────────────────────────


def test_a_repeated_message_id_is_forwarded_once(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    sent = message(conversation="order-42", message_id="m-1")

    first = relay.post_message(token, sent)
    second = relay.post_message(token, sent)

    assert first.status == 200, first
    assert first.json() == {"messageId": "m-1", "conversationId": "order-42", "status": "forwarded"}
    assert 200 <= second.status < 300, second
    assert second.json() == {"messageId": "m-1", "conversationId": "order-42", "status": "duplicate"}
    assert [forwarded["messageId"] for forwarded in relay.forwarded()] == ["acme:m-1"]


def test_the_same_message_id_from_two_clients_is_forwarded_for_each(relay: Relay) -> None:
    _, acme = relay.add_client("acme")
    _, globex = relay.add_client("globex")

    first = relay.post_message(acme, message(message_id="m-1"))
    second = relay.post_message(globex, message(message_id="m-1"))

    assert first.json()["status"] == "forwarded", first
    assert second.json()["status"] == "forwarded", second
    assert sorted(forwarded["messageId"] for forwarded in relay.forwarded()) == ["acme:m-1", "globex:m-1"]


def test_two_clients_sharing_a_conversation_id_are_kept_apart(
    relay: Relay, receiver: HTTPServer, other_receiver: HTTPServer
) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    other_receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    _, acme = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    _, globex = relay.add_client("globex", response_url=other_receiver.url_for("/hook"))

    assert relay.post_message(acme, message(conversation="support", userId="alice", text="from acme")).status == 200
    assert relay.post_message(globex, message(conversation="support", userId="bob", text="from globex")).status == 200
    to_acme, to_globex = relay.forwarded()
    assert to_acme["conversationId"] != to_globex["conversationId"]
    assert to_acme["userId"] != to_globex["userId"]

    acme_replies = relay.reply(to_acme, 2)
    globex_replies = relay.reply(to_globex, 1)
    relay.drain()

    acme_got = [json.loads(request.get_data()) for request, _ in receiver.log]
    globex_got = [json.loads(request.get_data()) for request, _ in other_receiver.log]
    assert [got["botpressMessageId"] for got in acme_got] == [reply["botpressMessageId"] for reply in acme_replies]
    assert [got["botpressMessageId"] for got in globex_got] == [reply["botpressMessageId"] for reply in globex_replies]
    assert {(got["clientId"], got["conversationId"], got["userId"]) for got in acme_got} == {
        ("acme", "support", "alice")
    }
    assert {(got["clientId"], got["conversationId"], got["userId"]) for got in globex_got} == {
        ("globex", "support", "bob")
    }


def test_a_message_id_reused_for_a_different_message_is_refused(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    assert relay.post_message(token, message(message_id="m-1", text="first")).status == 200

    response = relay.post_message(token, message(message_id="m-1", text="something else"))

    assert_refused(response, 422, "messageId")
    assert [forwarded["text"] for forwarded in relay.forwarded()] == ["first"]


# ── authentication ───────────────────────────────────────────────────────────────────────


def test_a_request_without_a_valid_token_is_refused(relay: Relay, aws: boto3.Session) -> None:
    _, good = relay.add_client("acme")
    refused: dict[str, tuple[str | None, dict[str, str] | None]] = {
        "missing": (None, None),
        "right-client-wrong-secret": ("acme.not-the-secret-part", None),
        "garbage": ("garbage", None),
        "unknown-client": ("ghost.abcdefghijklmnopqrstuvwxyz", None),
        "empty-bearer": (None, {"authorization": "Bearer "}),
        "not-bearer": (good, {"authorization": f"Basic {good}"}),
    }

    for name, (token, headers) in refused.items():  # each in turn, in one relay
        response = relay.post_message(token, message(), headers)

        assert response.status == 401, name
        assert_refused(response, 401)
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), name
        assert_nothing_forwarded_or_stored(relay, aws)


def test_a_new_token_refused_by_a_function_that_read_the_client_before_the_rotation_says_when_it_will_work(
    relay: Relay,
) -> None:
    _, old = relay.add_client("acme")
    assert relay.post_message(old, message()).status == 200  # the function now keeps acme's record for a while
    new = new_token("acme")
    relay.clients.rotate("acme", Rotation(token_hash=hash_token(new)), datetime.now(UTC))

    refused = relay.post_message(new, message())

    cache = InboundSettings.model_fields["cache_ttl_seconds"].default
    assert refused.status == 401
    assert f"a token made by a rotation is accepted within {cache:g} seconds" in refused.json()["message"]
    assert relay.post_message(old, message()).status == 200  # the old one, in its grace period


def test_a_token_of_one_client_with_the_secret_part_of_another_is_refused(relay: Relay, aws: boto3.Session) -> None:
    _, acme = relay.add_client("acme")
    _, globex = relay.add_client("globex")
    forged = "acme." + globex.partition(".")[2]

    response = relay.post_message(forged, message())

    assert_refused(response, 401)
    assert "www-authenticate" in response.headers
    assert_nothing_forwarded_or_stored(relay, aws)
    assert relay.post_message(acme, message()).status == 200  # the real token still works


def test_a_disabled_client_is_refused(relay: Relay, aws: boto3.Session) -> None:
    client, token = relay.add_client("acme")
    relay.clients.put(client.model_copy(update={"enabled": False}))

    response = relay.post_message(token, message())

    assert_refused(response, 401)
    assert "www-authenticate" in response.headers
    assert "disabled" in response.json()["message"]
    assert_nothing_forwarded_or_stored(relay, aws)


def test_the_token_is_checked_before_the_body(relay: Relay, aws: boto3.Session) -> None:
    """A caller without a token learns nothing about the body format."""
    response = relay.post_message(None, b"{not json")

    assert_refused(response, 401)
    assert_nothing_forwarded_or_stored(relay, aws)


# ── bad input: one of each refusal through the handler (the matrices are in tests/unit/test_bodies.py and
# test_models.py, the statuses in test_api.py) ─────────────────────────────────────────────


BAD_BODIES = {
    "not-json": (b'{"userId": "alice", ', 400, None),
    "100000-deep": (b"[" * 100_000 + b"]" * 100_000, 400, None),
    "not-an-object": (json.dumps([message()]).encode(), 422, None),
    "missing": (json.dumps(without("text")).encode(), 422, "text"),
    "blank-id": (json.dumps(message(messageId="   ")).encode(), 422, "messageId"),
    "wrong-type": (json.dumps(message(payload="hello")).encode(), 422, "payload"),
    "empty": (b"", 400, None),
}


def test_a_bad_body_is_refused_naming_what_is_wrong_and_nothing_is_stored(relay: Relay, aws: boto3.Session) -> None:
    _, token = relay.add_client("acme")

    for name, (raw, status, field) in BAD_BODIES.items():  # each in turn, in one relay
        response = relay.post_message(token, raw)

        assert response.status == status, name
        assert_refused(response, status, field)
        assert_nothing_forwarded_or_stored(relay, aws)


def test_a_body_over_256_kib_is_refused_with_413(relay: Relay, aws: boto3.Session) -> None:
    _, token = relay.add_client("acme")

    response = relay.post_message(token, sized_message(MAX_BODY_BYTES + 1))

    assert_refused(response, 413)
    assert str(MAX_BODY_BYTES) in response.json()["message"]
    assert_nothing_forwarded_or_stored(relay, aws)


def test_a_body_of_exactly_256_kib_is_forwarded(relay: Relay) -> None:
    _, token = relay.add_client("acme")

    response = relay.post_message(token, sized_message(MAX_BODY_BYTES))

    assert response.status == 200, response
    (forwarded,) = relay.forwarded()
    assert len(forwarded["text"]) > 250_000


# ── encodings ────────────────────────────────────────────────────────────────────────────


def test_a_base64_encoded_body_is_accepted(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    sent = message(message_id="m-b64", text="héllo ✓")
    raw = json.dumps(sent, ensure_ascii=False).encode()
    event = http_event(
        "POST",
        "/messages",
        "/messages",
        {"content-type": "application/octet-stream", "authorization": f"Bearer {token}"},
        raw,
    )
    event.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)

    status, _, answer = api_response(relay.inbound.invoke(event))

    assert status == 200, answer
    assert json.loads(answer)["status"] == "forwarded"
    (forwarded,) = relay.forwarded()
    assert forwarded["messageId"] == "acme:m-b64"
    assert forwarded["text"] == "héllo ✓"


def test_a_body_that_is_not_utf8_is_refused_with_400(relay: Relay, aws: boto3.Session) -> None:
    _, token = relay.add_client("acme")
    raw = json.dumps(message(text="hello")).encode().replace(b"hello", b"h\xe9llo")  # Latin-1, not UTF-8

    response = relay.post_message(token, raw)

    assert_refused(response, 400)
    assert "UTF-8" in response.json()["message"]
    assert_nothing_forwarded_or_stored(relay, aws)


# ── an unreliable bot ────────────────────────────────────────────────────────────────────


def assert_retry_forwarded_once(relay: Relay, token: str, sent: dict[str, Any]) -> None:
    """The client's retry with the same messageId is forwarded; a further repeat is not."""
    retried = relay.post_message(token, sent)
    repeated = relay.post_message(token, sent)

    assert retried.status == 200, retried
    assert retried.json()["status"] == "forwarded"
    assert repeated.json()["status"] == "duplicate", repeated


def test_a_bot_answering_500_gives_502_and_the_retry_is_forwarded_once(
    unreliable_relay: Relay, scripted_bot: ScriptedBot
) -> None:
    relay = unreliable_relay
    _, token = relay.add_client("acme")
    sent = message(message_id="m-1")
    scripted_bot.mode = "fail"

    failed = relay.post_message(token, sent)

    assert_refused(failed, 502)
    assert "500" in failed.json()["message"]
    assert len(relay.bot.log) == 1

    scripted_bot.mode = "ok"
    assert_retry_forwarded_once(relay, token, sent)
    assert len(relay.bot.log) == 2


def test_a_bot_that_hangs_gives_504_within_the_timeout_and_the_retry_is_forwarded_once(
    unreliable_relay: Relay, scripted_bot: ScriptedBot
) -> None:
    relay = unreliable_relay
    _, token = relay.add_client("acme")
    sent = message(message_id="m-1")
    scripted_bot.mode = "hang"

    failed = relay.post_message(token, sent)

    assert_refused(failed, 504)
    # The relay gave up at its own timeout: the bot was still holding the request (it hangs HANG_SECONDS).
    assert scripted_bot.entered.is_set()
    assert scripted_bot.hung_requests_answered == 0, "the relay waited for the hung bot instead of its timeout"

    scripted_bot.mode = "ok"
    scripted_bot.released.set()
    assert_retry_forwarded_once(relay, token, sent)
    assert len(relay.bot.log) == 2  # the request that timed out, and the retry


def test_a_repeat_sent_while_the_first_is_still_with_the_bot_is_not_forwarded_twice(
    unreliable_relay: Relay, scripted_bot: ScriptedBot
) -> None:
    relay = unreliable_relay
    _, token = relay.add_client("acme")
    sent = message(message_id="m-1")
    scripted_bot.mode = "hang"
    first: list[Any] = []
    sender = threading.Thread(target=lambda: first.append(relay.post_message(token, sent)))
    sender.start()
    try:
        assert scripted_bot.entered.wait(timeout=5), "the first request never reached the bot"
        second = relay.post_message(token, sent)
    finally:
        scripted_bot.mode = "ok"
        scripted_bot.released.set()
        sender.join(timeout=10)

    assert second.status == 409, second
    assert "retry-after" in second.headers
    assert first[0].status == 200, first[0]
    assert len(relay.bot.log) == 1


def free_port() -> int:
    """A port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_bot_gives_502_saying_so(aws: boto3.Session, bot: HTTPServer) -> None:
    """Connection refused is not a timeout: the answer is immediate and says the bot cannot be reached."""
    relay = Relay(aws, bot, {"BotWebhookUrl": f"http://127.0.0.1:{free_port()}/webhook"})
    _, token = relay.add_client("acme")

    response = relay.post_message(token, message(message_id="m-1"))

    assert_refused(response, 502)
    assert "unreachable" in response.json()["message"]
    assert "within" not in response.json()["message"]


def test_a_message_refused_while_the_bot_is_down_is_forwarded_once_it_is_up(
    aws: boto3.Session, bot: HTTPServer
) -> None:
    port = free_port()
    relay = Relay(aws, bot, {"BotWebhookUrl": f"http://127.0.0.1:{port}/webhook"})
    _, token = relay.add_client("acme")
    sent = message(message_id="m-1")

    down = relay.post_message(token, sent)
    assert down.status in (502, 504), down
    assert table_items(aws, relay, "IdempotencyTable") == []  # the messageId is free for a retry

    late_bot = HTTPServer(host="127.0.0.1", port=port)
    late_bot.expect_request("/webhook", method="POST").respond_with_json({"message": {"id": "bp-msg"}})
    late_bot.start()
    try:
        assert_retry_forwarded_once(relay, token, sent)
        forwarded = [json.loads(request.get_data())["messageId"] for request, _ in late_bot.log]
    finally:
        late_bot.clear()
        late_bot.stop()

    assert forwarded == ["acme:m-1"]


# ── the optional payload, as the Botpress integration's webhook treats it ────────────────


def test_the_payload_reaches_the_bot_as_the_integration_would_send_it(relay: Relay) -> None:
    """Its text copied into a payload without one (the other cases: tests/unit/test_models.py)."""
    _, token = relay.add_client("acme")

    assert relay.post_message(token, message(text="hello", payload={"choice": "b"})).status == 200

    assert relay.forwarded()[-1]["payload"] == {"choice": "b", "text": "hello"}


def test_a_crashed_forward_holds_its_message_id_for_the_bot_timeout_not_the_function_timeout(
    relay: Relay, aws: boto3.Session
) -> None:
    """A forward that dies leaves its in-progress mark; it must expire soon after the forward must have ended."""
    _, token = relay.add_client("acme")

    assert relay.post_message(token, message(message_id="m-1")).status == 200
    answered = time.time()

    (record,) = table_items(aws, relay, "IdempotencyTable")
    in_progress_until = int(record["in_progress_expiration"]["N"]) / 1000
    # Marked before the answer, so held at most this long past it; the function's timeout is 29 s.
    held_past_answer = in_progress_until - answered
    assert held_past_answer <= BOT_TIMEOUT_SECONDS + FORWARD_MARGIN_SECONDS + 0.001, held_past_answer
