"""Recording responses: one message of the responses log's queue into an in-memory log."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from memory import Clock, MemoryLog, client_response
from pydantic import ValidationError

from relay.flows.recording import record_from_queue


def queued(body: str, sequence_number: int) -> SQSRecord:
    return SQSRecord(
        {"messageId": f"sqs-{sequence_number}", "body": body, "attributes": {"SequenceNumber": str(sequence_number)}}
    )


def test_a_response_is_recorded_at_its_sequence_number_and_a_redelivery_once() -> None:
    log = MemoryLog(Clock())
    body = client_response("c-1", "hi").to_json()

    record_from_queue(log, queued(body, 18_000_000_000_000_000_001))  # type: ignore[arg-type]
    record_from_queue(log, queued(body, 18_000_000_000_000_000_001))  # type: ignore[arg-type]

    [entry] = log.after("acme", "c-1", 0, 10)
    assert (entry.position, entry.body) == (18_000_000_000_000_000_001, body)


def test_a_malformed_message_raises_so_the_queue_retries_then_dead_letters_it() -> None:
    log = MemoryLog(Clock())

    with pytest.raises(ValidationError):
        record_from_queue(log, queued('{"type": "text"}', 1))  # type: ignore[arg-type]
    assert log.entries == {}
