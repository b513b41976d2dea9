"""Each client's rate as the client API's flows apply it: in-memory stores and buckets, a clock that moves only
when a test sleeps. What a client over its rate gets, what it does not get forwarded, and who else is touched."""

from __future__ import annotations

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
)

from relay.caller import Caller
from relay.conversation_tokens import ConversationTokens
from relay.errors import RateLimited
from relay.flows.inbound import Inbound
from relay.flows.polling import ResponsesQuery, ResponsesReader
from relay.flows.throttling import Throttle
from relay.flows.tokens import TokenRequest, Tokens
from relay.models import InboundMessage, MessageReceipt
from relay.observability import metrics
from relay.rate_limits import DEFAULT_RATE, RateLimit
from relay.watermarks import Watermarks


class Api:
    """The client API's flows for two clients, acme and globex, sharing one throttle as the function does."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clients = MemoryClients("acme", "globex")
        self.buckets = MemoryBuckets(self.clock)
        self.bot = MemoryBot()
        self.repeats = MemoryRepeats()
        conversations = MemoryConversations()
        reader = ResponsesReader(
            MemoryLog(self.clock),  # type: ignore[arg-type]
            conversations,  # type: ignore[arg-type]
            Watermarks(lambda: "watermark key"),
            clock=self.clock.monotonic,
            sleep=self.clock.sleep,
            now=self.clock.wall,
        )
        self.events = MemoryEvents()
        throttle = Throttle(
            self.buckets, self.clients, SETTINGS.client_rate_limit, events=self.events, clock=self.clock.wall
        )
        self.inbound = Inbound(
            conversations,  # type: ignore[arg-type]
            self.bot,  # type: ignore[arg-type]
            self.repeats,
            reader,
            SETTINGS,
            throttle=throttle,
            clock=self.clock.monotonic,
        )
        self.inbound.starting(Context(self.clock, 29))  # type: ignore[arg-type]
        self.conversation_tokens = ConversationTokens(lambda: "token key", clock=self.clock.wall)
        self.tokens = Tokens(self.conversation_tokens, SETTINGS.stream_url, throttle=throttle, clock=self.clock.wall)

    def send(self, message_id: str, caller: Caller | str = "acme") -> MessageReceipt:
        caller = Caller(caller) if isinstance(caller, str) else caller
        body = {"userId": "alice", "messageId": message_id, "conversationId": "c-1", "type": "text", "text": "hi"}
        return self.inbound.accept(caller, InboundMessage.model_validate(body))

    def sent(self, client: str = "acme") -> list[str]:
        return [m.message_id.removeprefix(f"{client}:") for m in self.bot.forwarded if m.message_id.startswith(client)]


@pytest.fixture
def api() -> Api:
    return Api()


def refused(call: Any, *args: Any) -> RateLimited:
    with pytest.raises(RateLimited) as raised:
        call(*args)
    return raised.value


def test_a_client_over_its_rate_is_refused_and_nothing_it_sent_then_is_forwarded(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api.clients.rates["acme"] = 1  # bursts of 2
    metrics.clear_metrics()

    api.send("m-1"), api.send("m-2")
    over = refused(api.send, "m-3")

    assert api.sent() == ["m-1", "m-2"]
    assert (over.verdict.retry_after_seconds, over.verdict.limit, over.verdict.remaining) == (1, 2, 0)
    assert "over its rate of 1 requests per second (bursts of 2)" in over.message
    assert "RateLimited" in metrics.metric_set
    (line,) = [r for r in caplog.records if r.getMessage() == "client over its rate"]
    assert line.client_id == "acme"  # type: ignore[attr-defined]
    metrics.clear_metrics()

    api.clock.sleep(1.0)
    assert api.send("m-3").status == "forwarded"  # not a repeat: the refusal left its messageId free
    assert api.sent() == ["m-1", "m-2", "m-3"]


def test_operators_are_told_of_a_client_over_its_rate_at_most_once_a_minute(api: Api) -> None:
    api.clients.rates["acme"] = 1  # bursts of 2
    api.send("m-1"), api.send("m-2")

    for n in range(5):
        refused(api.send, f"over-{n}")
    api.clock.sleep(59)  # the bucket full again: two go through, the third is over
    api.send("m-3"), api.send("m-4")
    refused(api.send, "still-over")
    api.clock.sleep(1)
    api.send("m-5")
    refused(api.send, "a-minute-on")

    told = api.events.published
    assert [event.type for event in told] == ["client.rate_limited"] * 2
    assert told[0].client_id == "acme" and told[0].reason == "over its rate of 1 requests per second (bursts of 2)"
    assert told[1].at.timestamp() - told[0].at.timestamp() == pytest.approx(60)


def test_a_message_found_over_the_rate_only_at_its_count_is_not_forwarded_and_its_messageid_stays_free(
    api: Api,
) -> None:
    """This container has not seen the bucket full; another one emptied it: the count refuses, after the
    messageId was taken, which the refusal gives back."""
    api.buckets.spend("acme", RateLimit(DEFAULT_RATE))

    refused(api.send, "m-1")

    assert api.sent() == [] and api.repeats.records == {}
    api.clock.sleep(1 / DEFAULT_RATE)
    assert api.send("m-1").status == "forwarded"


def test_a_repeated_messageid_is_not_counted_again(api: Api) -> None:
    api.clients.rates["acme"] = 1  # bursts of 2

    api.send("m-1")
    repeats = [api.send("m-1").status for _ in range(5)]

    assert repeats == ["duplicate"] * 5
    assert api.buckets.writes == 1
    assert api.send("m-2").status == "forwarded"  # the burst's second request is still there
    refused(api.send, "m-3")


def test_another_client_is_untouched_by_a_client_over_its_rate(api: Api) -> None:
    api.clients.rates["acme"] = 1

    flood = 0
    for n in range(50):
        try:
            api.send(f"flood-{n}")
        except RateLimited:
            flood += 1

    assert flood == 48
    assert [api.send(f"g-{n}", "globex").status for n in range(2 * DEFAULT_RATE)] == ["forwarded"] * 2 * DEFAULT_RATE
    refused(api.send, "g-over", "globex")


def test_every_route_a_client_or_its_conversation_tokens_call_counts_against_the_clients_rate(api: Api) -> None:
    api.clients.rates["acme"] = 2  # bursts of 4
    acme = Caller("acme")

    minted = api.tokens.mint(acme, "c-1", TokenRequest(user_id="alice"))  # 1
    grant = api.conversation_tokens.read(minted.token)  # the browser's caller, as the edge reads its token
    browser = Caller("acme", grant)
    api.send("m-1", browser)  # 2
    api.inbound.responses(browser, "c-1", ResponsesQuery())  # 3
    api.tokens.refresh(grant)  # 4

    for call, args in [
        (api.send, ("m-2",)),
        (api.send, ("m-3", browser)),
        (api.inbound.responses, (acme, "c-1", ResponsesQuery())),
        (api.tokens.mint, (acme, "c-1", TokenRequest(user_id="alice"))),
        (api.tokens.refresh, (grant,)),
    ]:
        refused(call, *args)
    assert api.send("g-1", "globex").status == "forwarded"
