"""AWS API calls per message in a warm container, counted with botocore's event hooks.

Targets: inbound ≤ 2 (amortized) besides the forward to the bot, bot response ≤ 2,
delivery 0 beyond the event source. Run with -s to see the figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer

from harness import Relay, message

MESSAGES = 20


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def take(self) -> Counter[str]:
        calls, self.calls = self.calls, Counter()
        return calls


@pytest.fixture
def counted(aws: boto3.Session, bot: HTTPServer) -> Iterator[tuple[Relay, CallCounter]]:
    """The relay with every AWS call its handlers make counted (the harness's own calls are not)."""
    counter = CallCounter()
    boto3.setup_default_session(region_name="us-east-1")  # the session the handlers' clients come from
    boto3.DEFAULT_SESSION.events.register("before-call", counter)
    bot.expect_request("/webhook", method="POST").respond_with_json({})
    yield Relay(aws, bot), counter
    boto3.DEFAULT_SESSION = None


def test_warm_calls_per_message(counted: tuple[Relay, CallCounter], receiver: HTTPServer) -> None:
    relay, counter = counted
    receiver.expect_request("/hook").respond_with_data("")
    _, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))

    # Cold: the first message of a container fetches the client, the bot token and records the conversation.
    relay.post_message(token, message())
    (forwarded,) = relay.forwarded()
    relay.reply(forwarded)
    relay.drain()
    cold = counter.take()

    for _ in range(MESSAGES):
        assert relay.post_message(token, message()).status == 200
    inbound = counter.take()

    relay.reply(forwarded, MESSAGES)
    bot_response = counter.take()

    relay.drain()
    delivery = counter.take()

    print(f"\ncold, first message end to end: {sum(cold.values())} calls {dict(cold)}")
    for name, calls in [("inbound", inbound), ("bot response", bot_response), ("delivery", delivery)]:
        print(f"warm {name}: {sum(calls.values()) / MESSAGES:.2f} calls per message {dict(calls)}")

    assert sum(inbound.values()) / MESSAGES <= 2
    assert inbound["secretsmanager:GetSecretValue"] == 0 and inbound["dynamodb:GetItem"] == 0
    assert sum(bot_response.values()) / MESSAGES <= 2
    assert bot_response["sns:Publish"] == MESSAGES
    assert sum(delivery.values()) == 0
    assert len(receiver.log) == MESSAGES + 1
