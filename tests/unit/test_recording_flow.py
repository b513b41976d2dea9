"""Recording responses: one message of the responses log's queue into an in-memory log."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.stub import Stubber
from memory import Clock, MemoryLog, MemoryNudges, client_response
from pydantic import ValidationError

from relay.flows.recording import record_from_queue
from relay.models import scoped
from relay.stores.connections import ConnectionStore


def queued(body: str, sequence_number: int) -> SQSRecord:
    return SQSRecord(
        {"messageId": f"sqs-{sequence_number}", "body": body, "attributes": {"SequenceNumber": str(sequence_number)}}
    )


class Connections:
    """The connections table as the look sees it: the conversations with an open connection, and at each look
    what the log held then."""

    def __init__(self, log: MemoryLog, *open_conversations: str) -> None:
        self.log = log
        self.open = set(open_conversations)
        self.looks: list[int] = []

    def any_open(self, client_id: str, conversation_id: str) -> bool:
        self.looks.append(len(self.log.after(client_id, conversation_id, 0, 100)))
        return conversation_id in self.open


def test_a_response_is_recorded_at_its_sequence_number_and_a_redelivery_once_both_nudging_an_open_stream() -> None:
    log, nudges = MemoryLog(Clock()), MemoryNudges()
    connections = Connections(log, "c-1")
    body = client_response("c-1", "hi").to_json()

    record_from_queue(log, connections, nudges, queued(body, 18_000_000_000_000_000_001))  # type: ignore[arg-type]
    record_from_queue(log, connections, nudges, queued(body, 18_000_000_000_000_000_001))  # type: ignore[arg-type]

    [entry] = log.after("acme", "c-1", 0, 10)
    assert (entry.position, entry.body) == (18_000_000_000_000_000_001, body)
    assert nudges.sent == [("acme", "c-1", "log-18000000000000000001")] * 2
    # Each look came after the response was in the log: a $connect the look missed reads it (relay.flows.recording).
    assert connections.looks == [1, 1]


def test_a_response_of_a_conversation_no_browser_has_open_is_recorded_without_a_nudge() -> None:
    log, nudges = MemoryLog(Clock()), MemoryNudges()
    connections = Connections(log, "c-2")

    record_from_queue(log, connections, nudges, queued(client_response("c-1", "hi").to_json(), 7))  # type: ignore[arg-type]

    assert [entry.position for entry in log.after("acme", "c-1", 0, 10)] == [7]
    assert (connections.looks, nudges.sent) == ([1], [])


def test_a_malformed_message_raises_so_the_queue_retries_then_dead_letters_it() -> None:
    log, nudges = MemoryLog(Clock()), MemoryNudges()

    with pytest.raises(ValidationError):
        record_from_queue(log, Connections(log, "c-1"), nudges, queued('{"type": "text"}', 1))  # type: ignore[arg-type]
    assert (log.entries, nudges.sent) == ({}, [])


def test_a_failed_look_nudges_the_stream_rather_than_hold_up_the_conversations_recording() -> None:
    class Failing:
        def any_open(self, client_id: str, conversation_id: str) -> bool:
            raise RuntimeError("throttled")

    log, nudges = MemoryLog(Clock()), MemoryNudges()

    record_from_queue(log, Failing(), nudges, queued(client_response("c-1", "hi").to_json(), 7))  # type: ignore[arg-type]

    assert [entry.position for entry in log.after("acme", "c-1", 0, 10)] == [7]
    assert nudges.sent == [("acme", "c-1", "log-7")]


def stubbed_dynamodb(*pages: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """A real DynamoDB client whose queries botocore's Stubber answers with `pages`, one each; and the requests."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(dynamodb)
    for page in pages:
        stubber.add_response("query", {"Items": [], "ScannedCount": 0, **page})
    asked: list[dict[str, Any]] = []
    dynamodb.meta.events.register("before-parameter-build.dynamodb.Query", lambda params, **_: asked.append({**params}))
    stubber.activate()
    return dynamodb, asked


def test_the_look_counts_the_conversations_unexpired_connections_with_consistent_reads_page_after_page() -> None:
    """Consistent, or the argument that a look which misses a $connect ran before its record fails; a count, the
    only query the function's role allows; a page of expired connections only is followed."""
    key = {"conversationKey": {"S": "k"}, "connectionId": {"S": "c"}}
    dynamodb, asked = stubbed_dynamodb({"Count": 0, "LastEvaluatedKey": key}, {"Count": 1})

    assert ConnectionStore(dynamodb, "connections").any_open("acme", "c-1")

    first, second = asked
    assert first["ConsistentRead"] is True and first["Select"] == "COUNT"
    assert first["FilterExpression"] == "expiresAt > :now"
    assert float(first["ExpressionAttributeValues"][":now"]["N"]) == pytest.approx(time.time(), abs=5)
    assert first["ExpressionAttributeValues"][":conversation"] == {"S": scoped("acme", "c-1")}
    assert second["ExclusiveStartKey"] == key
    assert not ConnectionStore(stubbed_dynamodb({"Count": 0})[0], "connections").any_open("acme", "c-1")
