"""The responses log: one more consumer of the topic, recording each conversation's responses in the bot's order."""

from __future__ import annotations

import json
import time

from devstack.lambdas import sqs_event
from harness import Relay, message


def test_each_conversation_is_recorded_in_the_bot_order(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    for conversation in ("one", "two"):
        assert relay.post_message(token, message(conversation, text=conversation)).status == 200
    first, second = relay.forwarded()

    relay.reply(first, 3)
    relay.reply(second, 2)
    relay.reply(first, 2)
    relay.record()

    assert relay.logged("acme", "one") == [f"reply {n} to one" for n in (1, 2, 3, 1, 2)]
    assert relay.logged("acme", "two") == ["reply 1 to two", "reply 2 to two"]


def test_a_redelivered_message_is_recorded_once(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    relay.post_message(token, message("one", text="one"))
    relay.reply(relay.forwarded()[0])
    url = relay.responses_log.spec.queue_url
    (received,) = relay.sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"]
    event = sqs_event([received], "arn:aws:sqs:us-east-1:123456789012:relay-dev-responses-log.fifo")

    assert relay.responses_log.invoke(event) == {"batchItemFailures": []}
    assert relay.responses_log.invoke(event) == {"batchItemFailures": []}

    assert relay.logged("acme", "one") == ["reply 1 to one"]


def test_an_unrecordable_response_is_dead_lettered_and_the_others_are_recorded(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    relay.post_message(token, message("one", text="one"))
    url = relay.responses_log.spec.queue_url
    relay.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})  # each retry at once
    relay.sqs.send_message(
        QueueUrl=url, MessageBody='{"not": "a response"}', MessageGroupId="g", MessageDeduplicationId="x"
    )
    relay.reply(relay.forwarded()[0], 2)

    deadline = time.monotonic() + 15
    while relay.queue_depth(url) and time.monotonic() < deadline:
        relay.log_mapping.poll()
    dead = relay.sqs.receive_message(QueueUrl=relay.stack.ref("ResponsesLogDeadLetterQueue"))["Messages"]

    assert [json.loads(m["Body"]) for m in dead] == [{"not": "a response"}]
    assert relay.logged("acme", "one") == ["reply 1 to one", "reply 2 to one"]
