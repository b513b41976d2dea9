"""AWS API calls per message in a warm container, counted with botocore's event hooks.

Targets: inbound ≤ 2 (amortized) besides the forward to the bot, bot response ≤ 2,
delivery 0 beyond the event source. Run with -s to see the figures.
"""

from __future__ import annotations

from collections import Counter

import boto3
import pytest
from pytest_httpserver import HTTPServer

from harness import Relay, message
from iam_policy import CallRecorder

MESSAGES = 20


class CallCounter:
    """Counts the calls the IAM check records (each function's own clients; the harness's calls are not)."""

    def __init__(self, recorder: CallRecorder) -> None:
        self._recorder = recorder
        self._seen = 0

    def take(self) -> Counter[str]:
        calls = self._recorder.calls[self._seen :]
        self._seen += len(calls)
        return Counter(call.operation for call in calls)


@pytest.fixture
def counted(aws: boto3.Session, bot: HTTPServer, iam_checked: CallRecorder) -> tuple[Relay, CallCounter]:
    """The relay with every AWS call its handlers make counted."""
    bot.expect_request("/webhook", method="POST").respond_with_json({})
    return Relay(aws, bot), CallCounter(iam_checked)


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
