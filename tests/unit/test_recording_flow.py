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


def test_a_response_is_recorded_at_its_sequence_number_and_a_redelivery_once_both_nudging_the_stream() -> None:
    log, nudges = MemoryLog(Clock()), MemoryNudges()
    body = client_response("c-1", "hi").to_json()

    record_from_queue(log, nudges, queued(body, 18_000_000_000_000_000_001))  # type: ignore[arg-type]
    record_from_queue(log, nudges, queued(body, 18_000_000_000_000_000_001))  # type: ignore[arg-type]

    [entry] = log.after("acme", "c-1", 0, 10)
    assert (entry.position, entry.body) == (18_000_000_000_000_000_001, body)
    assert nudges.sent == [("acme", "c-1", "log-18000000000000000001")] * 2


def test_a_malformed_message_raises_so_the_queue_retries_then_dead_letters_it() -> None:
    log, nudges = MemoryLog(Clock()), MemoryNudges()

    with pytest.raises(ValidationError):
        record_from_queue(log, nudges, queued('{"type": "text"}', 1))  # type: ignore[arg-type]
    assert (log.entries, nudges.sent) == ({}, [])
