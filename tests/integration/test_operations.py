"""The operations topic's publisher on moto: each event with the attributes a subscription filters on; a failure
to publish is logged, never raised into the delivery or request that had the news."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import boto3
import pytest

from relay.adapters.operations import OperationsPublisher
from relay.operations import EVENTS, ClientRateLimited, ConversationStopped, EndpointDisabled, EverySoOften

NOW = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)


@pytest.fixture
def inbox(aws: boto3.Session) -> tuple[str, str]:
    """A topic with a queue subscribed raw, as an operator's queue would be: (topic ARN, queue URL)."""
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="operations")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return topic, queue


def test_each_event_is_one_json_message_with_its_client_and_type_as_attributes(
    aws: boto3.Session, inbox: tuple[str, str]
) -> None:
    topic, queue = inbox
    publisher = OperationsPublisher(aws.client("sns"), topic)

    publisher.publish(EndpointDisabled(client_id="acme", at=NOW, host="acme.example", since=NOW, reason="failing"))

    (message,) = aws.client("sqs").receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(message["Body"]) == {
        "type": "endpoint.disabled",
        "clientId": "acme",
        "at": "2026-12-02T20:00:00Z",
        "host": "acme.example",
        "since": "2026-12-02T20:00:00Z",
        "reason": "failing",
    }
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes == {"clientId": "acme", "type": "endpoint.disabled"}


def test_an_event_that_cannot_be_published_is_logged_not_raised(
    aws: boto3.Session, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = OperationsPublisher(aws.client("sns"), "arn:aws:sns:us-east-1:123456789012:gone")
    event = ConversationStopped(client_id="acme", at=NOW, conversation_id="c-1", webhook_id="msg_1")

    with caplog.at_level(logging.ERROR):
        publisher.publish(event)

    assert "operational event not published" in caplog.text


def test_every_event_type_is_distinct() -> None:
    types = [event.model_fields["type"].default for event in EVENTS]
    assert len(set(types)) == len(types) == 6


def test_a_rate_limited_client_is_told_at_most_once_an_interval_in_a_container() -> None:
    now = [0.0]
    often = EverySoOften(60, lambda: now[0])

    told = [often.due("acme"), often.due("acme"), often.due("globex")]
    now[0] = 59.9
    told.append(often.due("acme"))
    now[0] = 60.0
    told.append(often.due("acme"))

    assert told == [True, False, True, False, True]
    assert ClientRateLimited(client_id="acme", at=NOW).type == "client.rate_limited"
