"""Recording responses: one message of the responses log's queue into an in-memory log."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from memory import Clock, MemoryLog, MemoryNudges, client_response
from pydantic import ValidationError

from relay.flows.recording import record_from_queue


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
