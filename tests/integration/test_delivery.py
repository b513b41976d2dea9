"""Delivery to a client's receiver: retried with growing delays, in order per conversation, dead-lettered at the end."""

from __future__ import annotations

import dataclasses
import itertools
import re
import uuid
from collections.abc import Iterator

import boto3
import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from devstack.esm import EventSourceMapping
from devstack.lambdas import LocalFunction
from harness import MAX_ATTEMPTS, Receiver, Relay, local_server, message
from relay.flows.delivery import ATTEMPT_RESERVE_SECONDS
from relay_clients import cli

# Short here to keep the tests quick: retries at once, and a stopped conversation held for 1 s (at least the
# client cache time, so that every container's cached client record knows of the stop) before it moves to the
# dead-letter queue. The test of growing delays keeps the harness's schedule (1 and 2 s). The endpoint's breaker,
# which would hold a failing receiver's responses unPOSTed, is kept out of the way of the schedule's tests: it has
# tests of its own (tests/unit/test_delivery_flow.py, tests/integration/test_isolation.py).
NO_BREAKER = {"ENDPOINT_FAILURE_THRESHOLD": "1000"}
QUICK = {
    "CACHE_TTL_SECONDS": "0.5",
    "DELIVERY_STOP_HOLD_SECONDS": "1",
    "DELIVERY_RETRY_SCHEDULE": "0",
    **NO_BREAKER,
}


def with_delivery_environment(relay: Relay, **environment: str) -> Relay:
    relay.delivery = LocalFunction(relay.delivery.spec, environment)
    relay.mapping = EventSourceMapping(relay.sqs, relay.delivery)
    return relay


@pytest.fixture
def relay(relay: Relay) -> Relay:
    return with_delivery_environment(relay, **QUICK)


@pytest.fixture
def scheduled_relay(relay: Relay) -> Relay:
    """The harness's retry schedule: 1 s, then 2 s."""
    return with_delivery_environment(relay, CACHE_TTL_SECONDS=QUICK["CACHE_TTL_SECONDS"], **NO_BREAKER)


def start_conversation(relay: Relay, token: str, conversation: str) -> dict:
    relay.post_message(token, message(conversation=conversation, text=conversation))
    return relay.forwarded()[-1]


def bot_says(relay: Relay, forwarded: dict, text: str) -> dict:
    """The bot sends one response with this text in the forwarded message's conversation."""
    body = {
        "type": "text",
        "payload": {"text": text},
        "conversationId": forwarded["conversationId"],
        "botpressMessageId": str(uuid.uuid4()),
    }
    assert relay.post_bot_response(body).status == 200
    return body


def texts(responses: list[dict]) -> list[str]:
    return [response["payload"]["text"] for response in responses]


@pytest.fixture
def busy_receiver() -> Iterator[HTTPServer]:
    """A receiver that takes many requests at once, as a real one does."""
    yield from local_server(threaded=True)


def test_a_batchs_conversations_are_delivered_at_once_each_in_order(relay: Relay, busy_receiver: HTTPServer) -> None:
    # One client's ten: its endpoint's cap on POSTs at once raised to the batch's size.
    relay = with_delivery_environment(relay, **QUICK, ENDPOINT_CONCURRENCY="10")
    client, token = relay.add_client("acme", response_url=busy_receiver.url_for("/hook"))
    # Long enough for all ten to arrive while the first is still being answered, even on a loaded machine.
    slow = Receiver(busy_receiver, {"acme": client.webhook_secret}, pause=2.0)
    conversations = [f"c{n}" for n in range(10)]
    single = {c: texts(relay.reply(start_conversation(relay, token, c))) for c in conversations}

    assert relay.mapping.poll() == 10, "one batch"

    assert slow.most_at_once() == 10, "the batch's ten conversations were delivered at the same time"
    slow._pause = 0.0  # what follows is about order, not overlap: answered at once
    threes = {c: texts(relay.reply(start_conversation(relay, token, c), 3)) for c in conversations[:3]}
    relay.drain()
    for conversation in conversations:
        assert slow.delivered(conversation) == single[conversation] + threes.get(conversation, [])


def test_responses_behind_a_failing_one_keep_all_their_own_attempts(relay: Relay, receiver: HTTPServer) -> None:
    """Receives spent waiting behind a failing response are not attempts: only real POSTs count."""
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    replies = texts(relay.reply(start_conversation(relay, token, "c"), 3))
    flaky = Receiver(receiver, {"acme": client.webhook_secret})
    flaky.refuse(replies[0], MAX_ATTEMPTS - 1).refuse(replies[1], 1)

    relay.drain(timeout=30)

    assert flaky.delivered("c") == replies, "every response, in the bot's order"
    assert [a.status for a in flaky.tries(replies[0])] == [500] * (MAX_ATTEMPTS - 1) + [204]
    assert [a.status for a in flaky.tries(replies[1])] == [500, 204], "its first refusal was its first attempt"
    assert [a.status for a in flaky.tries(replies[2])] == [204]
    assert relay.dead_letters() == []


def test_a_conversation_stops_at_its_undeliverable_response_and_nothing_later_is_delivered(
    relay: Relay, receiver: HTTPServer
) -> None:
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    forwarded = start_conversation(relay, token, "c")
    replies = texts(relay.reply(forwarded, 3))
    other = texts(relay.reply(start_conversation(relay, token, "other"), 1))
    flaky = Receiver(receiver, {"acme": client.webhook_secret}).refuse(replies[0], 1000)

    relay.drain(timeout=30)
    later = bot_says(relay, forwarded, "said after the stop")
    relay.drain(timeout=30)

    assert len(flaky.tries(replies[0])) == MAX_ATTEMPTS, "its full schedule of real attempts"
    assert flaky.delivered("c") == [], "nothing of the conversation after its undeliverable response"
    assert flaky.delivered("other") == other, "the other conversation was not held up"
    dead = relay.dead_letters()
    assert texts(dead) == [*replies, later["payload"]["text"]], "the conversation whole, in order"


def test_failing_receiver_is_retried_with_growing_delays_in_order_without_holding_up_others(
    scheduled_relay: Relay, receiver: HTTPServer
) -> None:
    relay = scheduled_relay
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    flaky = Receiver(receiver, {"acme": client.webhook_secret}).fail("slow", 2)
    slow = relay.reply(start_conversation(relay, token, "slow"), 3)
    fast = relay.reply(start_conversation(relay, token, "fast"), 2)

    relay.drain()

    assert flaky.delivered("slow") == [r["payload"]["text"] for r in slow]
    assert flaky.delivered("fast") == [r["payload"]["text"] for r in fast]
    first = [a for a in flaky.attempts if a.webhook_id == f"msg_{slow[0]['botpressMessageId']}"]
    assert [a.status for a in first] == [500, 500, 204], "the same webhook-id on every attempt"
    waits = [later.at - earlier.at for earlier, later in itertools.pairwise(first)]
    assert waits[0] >= 0.9 and waits[1] >= 1.9 and waits[1] > waits[0], f"delays should grow: {waits}"
    fast_done = max(a.at for a in flaky.attempts if a.conversation == "fast")
    assert fast_done < first[-1].at, "the other conversation was delivered while this one waited"
    assert relay.dead_letters() == []


def test_receiver_that_always_fails_leaves_the_conversation_in_the_dead_letter_queue_in_order(
    relay: Relay, receiver: HTTPServer
) -> None:
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    flaky = Receiver(receiver, {"acme": client.webhook_secret}).fail("doomed", 1000)
    replies = relay.reply(start_conversation(relay, token, "doomed"), 3)

    relay.drain()

    assert len(flaky.attempts) == MAX_ATTEMPTS
    assert {a.webhook_id for a in flaky.attempts} == {f"msg_{replies[0]['botpressMessageId']}"}
    dead = relay.dead_letters()
    # The responses queued behind the failed one follow it, so a redrive replays the conversation in order.
    assert [d["botpressMessageId"] for d in dead] == [r["botpressMessageId"] for r in replies]
    assert {d["conversationId"] for d in dead} == {"doomed"}


def test_unreachable_receiver_counts_as_a_failed_attempt(relay: Relay) -> None:
    _, token = relay.add_client("acme", response_url="http://127.0.0.1:9/closed")
    (reply,) = relay.reply(start_conversation(relay, token, "c"))

    relay.drain()

    (dead,) = relay.dead_letters()
    assert dead["botpressMessageId"] == reply["botpressMessageId"]


def test_client_without_response_url_is_skipped_not_dead_lettered(relay: Relay, receiver: HTTPServer) -> None:
    _, token = relay.add_client("sns-only")
    relay.reply(start_conversation(relay, token, "c"), 2)

    relay.drain()

    assert receiver.log == []
    assert relay.dead_letters() == []


def test_messages_an_invocation_has_no_time_for_are_delivered_by_the_next_one(
    aws: boto3.Session, bot: HTTPServer, receiver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch that would outrun the function's timeout leaves its tail untried, not failed."""
    bot.expect_request("/webhook", method="POST").respond_with_json({})
    # An attempt is begun only with the webhook timeout and the reserve after it left: no attempt starts after the
    # function's first 2 s, where four 0.8 s deliveries would fit. 0.8 s is well within the timeout under load.
    webhook_timeout = 2
    relay = Relay(aws, bot, parameters={"WebhookTimeoutSeconds": str(webhook_timeout)})
    timeout = webhook_timeout + ATTEMPT_RESERVE_SECONDS + 2
    relay.delivery = LocalFunction(dataclasses.replace(relay.delivery.spec, timeout_seconds=timeout), NO_BREAKER)
    relay.mapping = EventSourceMapping(relay.sqs, relay.delivery)
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    slow = Receiver(receiver, {"acme": client.webhook_secret}, pause=0.8)
    replies = texts(relay.reply(start_conversation(relay, token, "c"), 4))

    first_batch = relay.mapping.poll()
    delivered_first = len(slow.attempts)
    relay.drain()

    assert first_batch == 4 and delivered_first < 4, "no attempt begins in the function's last seconds"
    assert slow.delivered("c") == replies
    assert {a.status for a in slow.attempts} == {204}
    assert '"DeliveryFailed"' not in capsys.readouterr().out


# ── what the receiver says ──


def test_retry_after_is_honoured(relay: Relay, receiver: HTTPServer) -> None:
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    (reply,) = texts(relay.reply(start_conversation(relay, token, "c")))
    busy = Receiver(receiver, {"acme": client.webhook_secret}).refuse(reply, 1, 429, {"Retry-After": "2"})

    relay.drain(timeout=30)

    first, second = busy.tries(reply)
    assert (first.status, second.status) == (429, 204)
    assert second.started - first.at >= 2, "not sooner than asked (the schedule alone would retry at once)"


def test_410_gone_switches_the_response_url_off_until_an_operator_sets_it_again(
    relay: Relay, receiver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    forwarded = start_conversation(relay, token, "c")
    replies = texts(relay.reply(forwarded, 3))
    gone = Receiver(receiver, {"acme": client.webhook_secret}).refuse(replies[0], 1, 410)

    relay.drain()

    assert [a.text for a in gone.attempts] == [replies[0]], "nothing more is attempted there"
    assert relay.clients.get("acme").response_url_off
    assert '"ResponseUrlGone":[1.0]' in capsys.readouterr().out.replace(" ", "")
    assert relay.dead_letters() == [], "its responses are not undeliverable: they stay on SNS"

    assert cli.main(["--table", relay.stack.ref("ClientsTable"), "list"]) == 0
    assert "OFF" in capsys.readouterr().out
    assert cli.main(["--table", relay.stack.ref("ClientsTable"), "set-url", "acme", receiver.url_for("/hook")]) == 0
    relay.delivery.module.delivery._clients.forget("acme")  # the container's cache, as after its minute
    later = bot_says(relay, forwarded, "after the URL is back")
    relay.drain()

    assert gone.delivered("c") == [later["payload"]["text"]]


# ── rotation ──


def end_grace(relay: Relay, client_id: str) -> None:
    """The rotation's grace period is over: as an hour later, without waiting for it."""
    boto3.client("dynamodb", region_name="us-east-1").update_item(
        TableName=relay.stack.ref("ClientsTable"),
        Key={"clientId": {"S": client_id}},
        UpdateExpression="SET previousSecretExpiresAt = :past",
        ExpressionAttributeValues={":past": {"S": "2000-01-01T00:00:00Z"}},
    )


def test_during_a_rotations_grace_deliveries_verify_with_either_secret_and_after_it_only_the_new(
    relay: Relay, receiver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    old_secret = client.webhook_secret
    assert cli.main(["--table", relay.stack.ref("ClientsTable"), "rotate", "acme", "--secret", "--grace", "1h"]) == 0
    new_secret = re.search(r"signing secret:\s+(\S+)", capsys.readouterr().out).group(1)
    secret_of = {"acme": old_secret}  # the receiver has not been given the new secret yet
    taker = Receiver(receiver, secret_of)
    forwarded = start_conversation(relay, token, "c")

    relay.reply(forwarded)
    relay.drain()

    during = taker.attempts[-1]
    assert during.status == 204, taker.unverified
    assert len(during.headers["Webhook-Signature"].split(" ")) == 2, "one signature per valid secret"
    Webhook(new_secret).verify(during.body, during.headers)

    end_grace(relay, "acme")
    relay.delivery.module.delivery._clients.forget("acme")  # the container's cache, as after its minute
    secret_of["acme"] = new_secret
    relay.reply(forwarded)
    relay.drain()

    after = taker.attempts[-1]
    assert after.status == 204, taker.unverified
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(after.body, after.headers)


# ── operators ──


def test_redrive_of_one_conversation_delivers_it_whole_in_order_once_the_receiver_is_back(
    relay: Relay, receiver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    doomed = texts(relay.reply(start_conversation(relay, token, "doomed"), 3))
    other = texts(relay.reply(start_conversation(relay, token, "other"), 1))
    flaky = Receiver(receiver, {"acme": client.webhook_secret}).refuse(doomed[0], MAX_ATTEMPTS).fail("other", 1000)
    relay.drain(timeout=30)
    queues = [
        "--queue",
        relay.stack.ref("DeliveryQueue"),
        "--dead-letter-queue",
        relay.stack.ref("DeliveryDeadLetterQueue"),
    ]
    capsys.readouterr()

    assert cli.main(["redrive", *queues, "--client", "acme", "--conversation", "doomed", "--dry-run"]) == 0
    assert "Would move 3 " in capsys.readouterr().out
    assert cli.main(["redrive", *queues, "--client", "acme", "--conversation", "doomed"]) == 0
    assert "Moved 3 " in capsys.readouterr().out
    relay.drain(timeout=30)

    assert flaky.delivered("doomed") == doomed, "the conversation whole, in order, after its redrive"
    assert texts(relay.dead_letters()) == other, "only the conversation asked for moved"
    assert relay.clients.get("acme").stopped_conversations == 1, "the other conversation is still stopped"


def test_resume_of_a_stopped_conversation_whose_dead_letters_were_purged_delivers_its_new_responses(
    relay: Relay, receiver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    forwarded = start_conversation(relay, token, "doomed")
    doomed = texts(relay.reply(forwarded, 2))
    flaky = Receiver(receiver, {"acme": client.webhook_secret}).refuse(doomed[0], MAX_ATTEMPTS)
    relay.drain(timeout=30)
    relay.sqs.purge_queue(QueueUrl=relay.stack.ref("DeliveryDeadLetterQueue"))  # instead of a redrive
    resume = ["resume", "--client", "acme", "--conversation", "doomed", "--table", relay.stack.ref("ClientsTable")]
    resume += ["--delivery-state-table", relay.stack.ref("DeliveryStateTable")]
    capsys.readouterr()

    assert cli.main([*resume, "--dry-run"]) == 0
    assert "Would resume conversation 'doomed' of client 'acme'" in capsys.readouterr().out
    relay.clients.forget("acme")
    assert relay.clients.get("acme").stopped_conversations == 1, "a dry run resumes nothing"
    assert cli.main(resume) == 0
    assert "Resumed conversation 'doomed' of client 'acme'" in capsys.readouterr().out
    later = bot_says(relay, forwarded, "said after the resume")
    relay.drain(timeout=30)

    assert flaky.delivered("doomed") == [later["payload"]["text"]], "what the bot said after the resume"
    assert relay.dead_letters() == []
    relay.clients.forget("acme")
    assert relay.clients.get("acme").stopped_conversations == 0
    assert cli.main(resume) == 0
    assert "Nothing to resume: conversation 'doomed' of client 'acme' is not stopped." in capsys.readouterr().out


def test_replay_delivers_a_conversation_again_from_the_responses_log_in_order_and_publishes_nothing(
    relay: Relay, receiver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    taker = Receiver(receiver, {"acme": client.webhook_secret})
    lost = texts(relay.reply(start_conversation(relay, token, "lost"), 3))
    relay.reply(start_conversation(relay, token, "other"), 1)
    relay.drain()
    relay.record()
    first_ids = [attempt.webhook_id for attempt in taker.attempts if attempt.conversation == "lost"]
    where = ["--responses-table", relay.stack.ref("ResponsesTable"), "--queue", relay.stack.ref("DeliveryQueue")]
    capsys.readouterr()

    assert cli.main(["replay", *where, "--client", "acme", "--conversation", "lost", "--dry-run"]) == 0
    assert "Would queue 3 " in capsys.readouterr().out
    assert relay.queue_depth(relay.stack.ref("DeliveryQueue")) == 0, "a dry run queues nothing"
    assert cli.main(["replay", *where, "--client", "acme", "--conversation", "lost"]) == 0
    assert "Queued 3 " in capsys.readouterr().out
    relay.drain()

    assert taker.delivered("lost") == lost + lost, "delivered again, whole and in order"
    assert [a.webhook_id for a in taker.attempts if a.conversation == "lost"][3:] == first_ids, "the same webhook-ids"
    assert taker.delivered("other") != [] and len(taker.delivered("other")) == 1, "only the conversation asked for"
    assert relay.queue_depth(relay.stack.ref("ResponsesLogQueue")) == 0, "nothing published again"
    assert len(relay.logged("acme", "lost")) == 3


def test_replay_of_a_conversation_the_log_does_not_hold_says_so(
    relay: Relay, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--responses-table", relay.stack.ref("ResponsesTable"), "--queue", relay.stack.ref("DeliveryQueue")]

    assert cli.main(["replay", *where, "--client", "acme", "--conversation", "never"]) == 0

    assert "Nothing to replay" in capsys.readouterr().out
