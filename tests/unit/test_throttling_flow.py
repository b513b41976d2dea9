"""Each client's rate as the client API's flows apply it: in-memory stores and buckets, a clock that moves only
when a test sleeps. What a client over its rate gets, what it does not get forwarded, and who else is touched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from memory import (
    Clock,
    Context,
    MemoryBot,
    MemoryBuckets,
    MemoryClients,
    MemoryConversations,
    MemoryLog,
    MemoryRepeats,
)

from relay.conversation_tokens import ConversationTokens
from relay.edge.observability import metrics
from relay.errors import RateLimited
from relay.flows.inbound import Inbound
from relay.flows.polling import ResponsesReader
from relay.flows.throttling import Throttle
from relay.flows.tokens import Access, Tokens
from relay.models import MessageReceipt
from relay.rate_limits import DEFAULT_RATE, RateLimit
from relay.settings import InboundSettings
from relay.watermarks import Watermarks

SETTINGS = InboundSettings(
    clients_table="clients",
    conversations_table="conversations",
    idempotency_table="idempotency",
    bot_webhook_url="https://bot.example/webhook",  # type: ignore[arg-type]
    bot_token_secret="bot-token",
    responses_table="responses",
    watermark_key_secret="watermark-key",
    conversation_token_key_secret="conversation-token-key",
    stream_url="wss://stream.example/live",
    rate_limits_table="rate-limits",
)


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
        throttle = Throttle(self.buckets, self.clients, SETTINGS.client_rate_limit)
        access = Access(self.clients, ConversationTokens(lambda: "token key", clock=self.clock.wall))
        self.inbound = Inbound(
            access,
            conversations,  # type: ignore[arg-type]
            self.bot,  # type: ignore[arg-type]
            self.repeats,
            reader,
            SETTINGS,
            throttle=throttle,
            clock=self.clock.monotonic,
        )
        self.inbound.starting(Context(self.clock, 29))  # type: ignore[arg-type]
        self.tokens = Tokens(
            access, SETTINGS.stream_url, SETTINGS.max_body_bytes, throttle=throttle, clock=self.clock.wall
        )

    def send(self, message_id: str, client: str = "acme", token: str | None = None) -> MessageReceipt:
        body = {"userId": "alice", "messageId": message_id, "conversationId": "c-1", "type": "text", "text": "hi"}
        return self.inbound.accept(bearer(token or f"{client}.token"), json.dumps(body))

    def sent(self, client: str = "acme") -> list[str]:
        return [m.message_id.removeprefix(f"{client}:") for m in self.bot.forwarded if m.message_id.startswith(client)]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


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

    minted = api.tokens.mint(bearer("acme.token"), "c-1", '{"userId": "alice"}')  # 1
    browser = bearer(minted.token)
    api.send("m-1", token=minted.token)  # 2
    api.inbound.responses(browser, "c-1", None)  # 3
    api.tokens.refresh(browser)  # 4

    for call, args in [
        (api.send, ("m-2",)),
        (api.send, ("m-3", "acme", minted.token)),
        (api.inbound.responses, (bearer("acme.token"), "c-1", None)),
        (api.tokens.mint, (bearer("acme.token"), "c-1", '{"userId": "alice"}')),
        (api.tokens.refresh, (browser,)),
    ]:
        refused(call, *args)
    assert api.send("g-1", "globex").status == "forwarded"
