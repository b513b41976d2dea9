"""POST /messages and GET …/responses as the inbound flow decides them: in-memory stores and bot, a clock that
moves only when the flow sleeps; the bot adapter's refusals against a real HTTP bot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from memory import (
    SETTINGS,
    Clock,
    Context,
    MemoryBot,
    MemoryBuckets,
    MemoryClients,
    MemoryConversations,
    MemoryEvents,
    MemoryLog,
    MemoryRepeats,
    client_response,
    texts,
)
from pytest_httpserver import HTTPServer

from harness import local_server
from relay.adapters.bot import BotClient
from relay.caller import Caller
from relay.errors import (
    BotRefusedMessage,
    BotRejectedToken,
    BotTimeout,
    BotUnavailable,
    MessageIdReused,
)
from relay.flows.inbound import ANSWER_MARGIN_SECONDS, Inbound
from relay.flows.polling import QUIET_SECONDS, ResponsesQuery, ResponsesReader
from relay.flows.throttling import Throttle
from relay.models import InboundMessage, RepliesReceipt
from relay.observability import metrics
from relay.watermarks import Watermarks

ACME = Caller("acme")


class World:
    def __init__(self, bot: Any = None, remaining_seconds: float = 29) -> None:
        self.clock = Clock()
        self.log = MemoryLog(self.clock)
        self.conversations = MemoryConversations()
        self.bot = bot or MemoryBot()
        self.repeats = MemoryRepeats()
        reader = ResponsesReader(
            self.log,  # type: ignore[arg-type]
            self.conversations,  # type: ignore[arg-type]
            Watermarks(lambda: "watermark key"),
            clock=self.clock.monotonic,
            sleep=self.clock.sleep,
            now=self.clock.wall,
        )
        self.inbound = Inbound(
            self.conversations,  # type: ignore[arg-type]
            self.bot,
            self.repeats,
            reader,
            SETTINGS,
            throttle=Throttle(
                MemoryBuckets(self.clock), MemoryClients("acme"), SETTINGS.client_rate_limit, events=MemoryEvents()
            ),
            clock=self.clock.monotonic,
        )
        self.inbound.starting(Context(self.clock, remaining_seconds))  # type: ignore[arg-type]

    def send(self, message_id: str = "m-1", wait: float | None = None, **fields: Any) -> Any:
        body = {
            "userId": "alice",
            "messageId": message_id,
            "conversationId": "c-1",
            "type": "text",
            "text": "hello",
            **fields,
        }
        return self.inbound.accept(ACME, InboundMessage.model_validate(body), wait or 0)

    def bot_says(self, at: float, *texts_: str) -> None:
        def record() -> None:
            start = self.log.last_position("acme", "c-1") + 1
            for offset, text in enumerate(texts_):
                response = client_response("c-1", text)
                self.log.record(start + offset, response, response.to_json())

        self.clock.at(at, record)


@pytest.fixture
def world() -> World:
    return World()


def test_a_message_is_forwarded_once_with_ids_scoped_to_the_client(world: World) -> None:
    first = world.send()
    again = world.send()

    assert (first.status, again.status) == ("forwarded", "duplicate")
    assert [(m.message_id, m.conversation_id, m.user_id) for m in world.bot.forwarded] == [
        ("acme:m-1", "acme:c-1", "acme:alice")
    ]
    assert world.conversations.find("acme:c-1") is not None


def test_a_messageid_reused_for_another_message_is_refused(world: World) -> None:
    world.send()
    with pytest.raises(MessageIdReused):
        world.send(text="something else")
    assert len(world.bot.forwarded) == 1


@pytest.mark.parametrize(
    "refusal",
    [BotRefusedMessage("refused"), BotRejectedToken("token"), BotUnavailable("down"), BotTimeout("slow")],
    ids=lambda error: type(error).__name__,
)
def test_a_refused_forward_releases_the_messageid_for_a_retry(world: World, refusal: Exception) -> None:
    world.bot.refusals.append(refusal)
    with pytest.raises(type(refusal)):
        world.send()

    assert world.send().status == "forwarded"
    assert world.repeats.in_progress() == 0


def test_a_rejected_token_is_counted_and_logged_as_the_operators(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    metrics.clear_metrics()
    world.bot.refusals.append(BotRejectedToken("the bot refused the relay's own credentials (HTTP 401)"))
    with pytest.raises(BotRejectedToken):
        world.send()

    assert [r.levelname for r in caplog.records if r.getMessage() == "bot refused the relay's token"] == ["ERROR"]
    assert "BotRejectedToken" in metrics.metric_set
    metrics.clear_metrics()


def test_wait_answers_with_the_replies_once_the_bot_is_quiet(world: World) -> None:
    world.bot_says(0.5, "one")
    world.bot_says(1.2, "two", "three")

    receipt = world.send(wait=10)

    assert isinstance(receipt, RepliesReceipt)
    assert (receipt.status, texts(receipt)) == ("forwarded", ["one", "two", "three"])
    assert world.clock.now == pytest.approx(1.2 + QUIET_SECONDS, abs=0.3)


def test_wait_counts_from_the_request_and_ends_with_what_came(world: World) -> None:
    for n in range(20):
        world.bot_says(0.5 * (n + 1), f"r{n}")

    receipt = world.send(wait=4)

    assert world.clock.now == 4
    assert texts(receipt) == [f"r{n}" for n in range(8)]


def test_wait_is_bounded_by_the_invocations_remaining_time() -> None:
    world = World(remaining_seconds=3)
    for n in range(20):
        world.bot_says(0.5 * (n + 1), f"r{n}")

    world.send(wait=25)

    assert world.clock.now == pytest.approx(3 - ANSWER_MARGIN_SECONDS, abs=0.01)


def test_a_repeat_with_wait_answers_with_the_replies_since_the_first_forward(world: World) -> None:
    world.bot_says(0.5, "one")
    first = world.send(wait=5)
    world.bot_says(world.clock.now + 0.5, "two")
    world.clock.sleep(1)

    repeat = world.send(wait=5)

    assert (first.status, texts(first)) == ("forwarded", ["one"])
    assert (repeat.status, texts(repeat)) == ("duplicate", ["one", "two"])
    assert len(world.bot.forwarded) == 1


def test_a_repeat_with_wait_of_a_message_sent_without_it_answers_with_what_comes_next(world: World) -> None:
    world.bot_says(0.1, "before")
    world.send()
    world.clock.sleep(1)
    world.bot_says(1.5, "next")

    repeat = world.send(wait=5)

    assert (repeat.status, texts(repeat)) == ("duplicate", ["next"])


def test_get_responses_long_polls(world: World) -> None:
    world.send()
    world.bot_says(2.0, "late")

    page = world.inbound.responses(ACME, "c-1", ResponsesQuery(wait=10))

    assert texts(page) == ["late"]
    assert world.clock.now == pytest.approx(2.0, abs=0.3)


# ── the bot adapter against a real HTTP bot ──


@pytest.fixture(scope="module")
def bot_server() -> Iterator[HTTPServer]:
    yield from local_server()  # one server for the module: stopping one takes half a second


@pytest.fixture
def bot(bot_server: HTTPServer) -> Iterator[HTTPServer]:
    yield bot_server
    bot_server.clear()


def forward_to(bot: HTTPServer) -> None:
    message = InboundMessage.model_validate(
        {"userId": "acme:alice", "messageId": "acme:m-1", "conversationId": "acme:c-1", "type": "text", "text": "hi"}
    )
    BotClient(bot.url_for("/webhook"), lambda: "bot token", timeout_seconds=5).forward(message)


@pytest.mark.parametrize("status", [400, 422])
def test_a_message_the_bot_refuses_quotes_it_and_promises_no_retry(bot: HTTPServer, status: int) -> None:
    bot.expect_request("/webhook").respond_with_json({"message": "payload.text: Expected string"}, status=status)

    with pytest.raises(BotRefusedMessage) as refused:
        forward_to(bot)

    assert f"HTTP {status}: payload.text: Expected string" in refused.value.message
    assert "retry" not in refused.value.message


@pytest.mark.parametrize("status", [401, 403])
def test_a_bot_refusing_the_relays_token_says_it_is_the_operators_to_fix(bot: HTTPServer, status: int) -> None:
    bot.expect_request("/webhook").respond_with_data("Unauthorized", status=status)

    with pytest.raises(BotRejectedToken) as rejected:
        forward_to(bot)

    assert "operator" in rejected.value.message and "same messageId" not in rejected.value.message


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_a_bot_failing_for_now_asks_for_a_retry_with_the_same_messageid(bot: HTTPServer, status: int) -> None:
    bot.expect_request("/webhook").respond_with_data("busy", status=status)

    with pytest.raises(BotUnavailable) as unavailable:
        forward_to(bot)

    assert not isinstance(unavailable.value, BotRefusedMessage | BotRejectedToken)
    assert "retry with the same messageId" in unavailable.value.message
