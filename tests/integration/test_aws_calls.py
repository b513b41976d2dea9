"""AWS API calls per message in a warm container, counted with botocore's event hooks.

Targets: inbound ≤ 3 (amortized) besides the forward to the bot: the idempotency record, put then updated, and
the client's rate limit bucket, one conditional write (an exact rate shared by every container costs a write per
request; relay.stores.rate_limits); bot response ≤ 2; delivery per invocation (a batch of up to 10) one write of
its attempt records and one delete of its finished messages per conversation but the last, nothing per delivery;
the responses log 2 per response (its write, the count of the conversation's stream connections) and a third, the
stream's nudge, only when there is one; a poll 1 read, empty or not, and the write of its
count against the client's rate; a 20 s long poll tens of reads; the stream one post per frame and per
conversation's batch of nudges 3 more (its connections, the log, the cursor). Run with -s to see the figures.
"""

from __future__ import annotations

import time
from collections import Counter

import boto3
import pytest
from pytest_httpserver import HTTPServer

from harness import Relay, message
from iam_policy import Call, CallRecorder
from relay.rate_limits import MAX_RATE

MESSAGES = 20


class CallCounter:
    """Counts the calls the IAM check records (each function's own clients; the harness's calls are not)."""

    def __init__(self, recorder: CallRecorder) -> None:
        self._recorder = recorder
        self._seen = 0
        self.last: list[Call] = []

    def take(self) -> Counter[str]:
        calls = self._recorder.calls[self._seen :]
        self._seen += len(calls)
        self.last = calls
        return Counter(call.operation for call in calls)

    def on(self, table: str) -> int:
        """How many of the calls last taken went to this table of the template."""
        return sum(any(resource.endswith(f"-{table}") for resource in call.resources) for call in self.last)


@pytest.fixture
def counted(aws: boto3.Session, bot: HTTPServer, iam_checked: CallRecorder) -> tuple[Relay, CallCounter]:
    """The relay with every AWS call its handlers make counted; the tests send faster than a client's default rate,
    and none of their requests is to be refused."""
    bot.expect_request("/webhook", method="POST").respond_with_json({})
    return Relay(aws, bot, {"ClientRateLimit": str(MAX_RATE)}), CallCounter(iam_checked)


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
    bucket_writes = counter.on("RateLimitsTable")

    relay.reply(forwarded, MESSAGES)
    bot_response = counter.take()

    invocations = []
    invoke = relay.delivery.invoke
    relay.delivery.invoke = lambda event: invocations.append(event) or invoke(event)  # type: ignore[method-assign]
    relay.drain()
    delivery = counter.take()

    print(f"\ncold, first message end to end: {sum(cold.values())} calls {dict(cold)}")
    print(f"delivery: {len(invocations)} invocations for {MESSAGES} responses")
    for name, calls in [("inbound", inbound), ("bot response", bot_response), ("delivery", delivery)]:
        print(f"warm {name}: {sum(calls.values()) / MESSAGES:.2f} calls per message {dict(calls)}")

    assert sum(inbound.values()) / MESSAGES <= 3
    assert bucket_writes == MESSAGES  # one each: no read, no second try
    assert inbound["secretsmanager:GetSecretValue"] == 0 and inbound["dynamodb:GetItem"] == 0
    assert sum(bot_response.values()) / MESSAGES <= 2
    assert bot_response["sns:Publish"] == MESSAGES
    # One conversation: per invocation its attempts, in one write; Lambda deletes its messages.
    assert delivery == {"dynamodb:BatchWriteItem": len(invocations)}
    assert len(receiver.log) == MESSAGES + 1
    recorded = relay.call("GET", "/deliveries", token).json()["attempts"]
    assert len(recorded) == MESSAGES + 1, "one record per attempt"


def test_calls_per_recorded_response_and_per_poll(counted: tuple[Relay, CallCounter]) -> None:
    relay, counter = counted
    _, token = relay.add_client("acme")
    relay.post_message(token, message("c-1"))
    (forwarded,) = relay.forwarded()
    relay.reply(forwarded)
    relay.record()
    relay.get_responses(token, "c-1")  # warms the container: the watermark key, the conversation
    counter.take()

    relay.reply(forwarded, MESSAGES)
    counter.take()
    relay.record()
    recorded = counter.take()

    watermark = relay.get_responses(token, "c-1", limit=1).json()["watermark"]
    counter.take()
    full = [relay.get_responses(token, "c-1", after=watermark).json() for _ in range(MESSAGES)]
    non_empty = counter.take()
    watermark = full[-1]["watermark"]
    empty = [relay.get_responses(token, "c-1", after=watermark).json() for _ in range(MESSAGES)]
    nothing_new = counter.take()

    relay.post_message(token, message("c-1"), query="wait=0.5")
    silent_wait = counter.take()

    per = {name: sum(calls.values()) / MESSAGES for name, calls in [("recorded", recorded), ("poll", non_empty)]}
    print(f"\nresponses log: {per['recorded']:.2f} calls per recorded response {dict(recorded)}")
    print(f"poll with {MESSAGES} new responses: {per['poll']:.2f} calls {dict(non_empty)}")
    print(f"poll with nothing new: {sum(nothing_new.values()) / MESSAGES:.2f} calls {dict(nothing_new)}")
    print(f"POST ?wait=0.5 with a silent bot: {sum(silent_wait.values())} calls {dict(silent_wait)}")

    assert all(len(page["responses"]) == MESSAGES for page in full) and all(not p["responses"] for p in empty)
    # Each recorded response is written, then the conversation's connections looked for: none, so no nudge
    # (relay.flows.recording; test_calls_per_streamed_response has a browser).
    assert recorded == {"dynamodb:PutItem": MESSAGES, "dynamodb:Query": MESSAGES}
    assert non_empty == nothing_new == {"dynamodb:Query": MESSAGES, "dynamodb:UpdateItem": MESSAGES}


def test_reads_per_long_poll_of_twenty_seconds(counted: tuple[Relay, CallCounter]) -> None:
    """The reading flow on a clock that jumps instead of sleeping: the queries are real, the 20 s are not."""
    from relay.flows.polling import LONG_POLL_MAX_SECONDS, ResponsesQuery, ResponsesReader
    from relay.stores.conversations import ConversationStore
    from relay.stores.responses_log import ResponsesLog
    from relay.watermarks import Watermarks

    relay, counter = counted
    _, token = relay.add_client("acme")
    relay.post_message(token, message("c-1"))
    now = [0.0]
    dynamodb = relay.inbound.session.client("dynamodb")  # counted and IAM checked as the client API's
    reader = ResponsesReader(
        ResponsesLog(dynamodb, relay.stack.ref("ResponsesTable")),
        ConversationStore(dynamodb, relay.stack.ref("ConversationsTable")),
        Watermarks(lambda: "key"),
        clock=lambda: now[0],
        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
    )
    counter.take()

    page = reader.read("acme", "c-1", ResponsesQuery(wait=LONG_POLL_MAX_SECONDS), until=1000)

    calls = counter.take()
    print(f"\nlong poll of {LONG_POLL_MAX_SECONDS} s finding nothing: {dict(calls)}")
    assert page.responses == [] and now[0] == LONG_POLL_MAX_SECONDS
    assert 10 <= calls["dynamodb:Query"] <= 99, "tens of reads, not hundreds"


def test_calls_per_streamed_response(counted: tuple[Relay, CallCounter]) -> None:
    relay, counter = counted
    _, client = relay.add_client("acme")
    token = relay.mint_token(client, "c-1", {"userId": "user-1"}).json()["token"]
    relay.post_message(token, message("c-1"))
    (forwarded,) = relay.forwarded()
    for tab in ("tab-1", "tab-2"):  # moto's @connections takes posts to any connection
        assert relay.socket("$connect", tab, {"token": token})["statusCode"] == 200
    relay.reply(forwarded)
    relay.record()
    relay.send_stream()  # warms the stream function: its watermark key
    relay.reply(forwarded, MESSAGES)
    counter.take()
    relay.record()
    recorded = counter.take()

    relay.send_stream()
    streamed = counter.take()

    frames, batches = 2 * MESSAGES, -(-MESSAGES // 10)  # the queue hands out nudges ten at a time
    print(f"\nresponses log, with connections: {sum(recorded.values()) / MESSAGES:.2f} calls per response")
    print(f"stream, {MESSAGES} responses to 2 connections: {sum(streamed.values())} calls {dict(streamed)}")
    # The look finds the conversation's connections: each response nudges the stream.
    assert recorded == {"dynamodb:PutItem": MESSAGES, "dynamodb:Query": MESSAGES, "sqs:SendMessage": MESSAGES}
    assert streamed["execute-api:PostToConnection"] == frames
    assert sum(streamed.values()) - frames <= 4 * batches  # connections, log per connection, cursor per connection


def test_calls_per_self_service_request_and_per_failed_attempt(
    counted: tuple[Relay, CallCounter], receiver: HTTPServer
) -> None:
    """GET /client: the record, the newest success and failure, the day's two counts (and, failing, the first
    failure; stopped, the stops); GET /deliveries: one query per outcome; each also its count against the rate."""
    relay, counter = counted
    receiver.expect_request("/hook").respond_with_data("down", status=503)
    _, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    relay.post_message(token, message("c-1"))
    relay.reply(relay.forwarded()[-1])
    counter.take()
    relay.mapping.poll()  # one attempt, failed
    failed = counter.take()
    relay.call("GET", "/client", token)  # warms the client API
    counter.take()

    status = relay.call("GET", "/client", token)
    client_calls = counter.take()
    page = relay.call("GET", "/deliveries", token)
    deliveries_calls = counter.take()

    print(f"\na failed attempt: {dict(failed)}")
    print(f"GET /client, failing: {dict(client_calls)}; GET /deliveries: {dict(deliveries_calls)}")
    assert status.json()["endpoint"]["state"] == "failing" and len(page.json()["attempts"]) == 1
    # Its counter, its record, when it comes back (and the client's record, read in a cold container).
    assert failed - Counter({"dynamodb:GetItem": 1}) == {
        "dynamodb:UpdateItem": 1,
        "dynamodb:BatchWriteItem": 1,
        "sqs:ChangeMessageVisibilityBatch": 1,
    }
    assert client_calls == {"dynamodb:GetItem": 1, "dynamodb:Query": 5, "dynamodb:UpdateItem": 1}
    assert deliveries_calls == {"dynamodb:Query": 2, "dynamodb:UpdateItem": 1}


def test_operators_are_told_of_a_client_over_its_rate_by_the_client_api(
    counted: tuple[Relay, CallCounter], iam_checked: CallRecorder
) -> None:
    relay, counter = counted
    _, token = relay.add_client("acme")
    relay.clients.set_rate("acme", 1)  # bursts of 2

    statuses: list[int] = []
    while statuses.count(429) < 2 and len(statuses) < 40:  # calls, however slow, until two are refused
        statuses.append(relay.call("GET", "/client", token).status)

    assert statuses.count(429) == 2
    assert counter.take()["sns:Publish"] == 1, "told once, however many are refused"


def test_calls_per_refused_message_the_container_did_and_did_not_see_coming(counted: tuple[Relay, CallCounter]) -> None:
    """A refusal the container could not see coming (another container took the bucket's last request) costs the
    message's idempotency record, put first so that a repeat is never counted, the bucket's failed write, and the
    record's delete; operators are told once a minute per container. One it has seen coming costs no call. The
    other container's clock runs a minute ahead, so that the bucket stays out of reach however slow the test."""
    from devstack.provision import REGION
    from relay.rate_limits import RateLimit
    from relay.stores.rate_limits import RateLimits

    relay, counter = counted
    _, token = relay.add_client("acme")
    relay.clients.set_rate("acme", 1)  # bursts of 2
    assert relay.call("GET", "/client", token).status == 200  # warms the container; one of the two
    dynamodb, table = boto3.client("dynamodb", region_name=REGION), relay.stack.ref("RateLimitsTable")
    another_container = RateLimits(dynamodb, table, clock=lambda: time.time() + 60)
    assert another_container.take("acme", RateLimit(1)).admitted
    counter.take()

    unforeseen = relay.post_message(token, message("c-1"))
    first = counter.take()
    foreseen = relay.post_message(token, message("c-1"))
    second = counter.take()

    print(f"\nrefused POST /messages: unforeseen {dict(first)}, foreseen {dict(second)}")
    assert unforeseen.status == foreseen.status == 429
    assert first == {
        "dynamodb:PutItem": 1,
        "dynamodb:UpdateItem": 1,
        "dynamodb:DeleteItem": 1,
        "sns:Publish": 1,
    }
    assert second == {}
