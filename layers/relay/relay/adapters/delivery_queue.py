"""The delivery queue: a batch's records as queued responses, and the flow's decisions applied to them.

Lambda's event source mapping receives the batch, and deletes what the function reports done once the invocation
returns. That is after the batch's slowest conversation, which may be another client's: so the function deletes
each conversation's finished messages itself as soon as that conversation is done, and SQS can hand out the
conversation's next message at once (a FIFO group is blocked only while a message of it is in flight). Lambda's
own delete afterwards finds them gone. The rest is left to the function too: a failed message's next
visibility, the dead-letter queue, and what goes back untried.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent, SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from relay.adapters.publisher import endpoint_group_id
from relay.adapters.redelivery import BATCH_ENTRIES, Redelivery
from relay.attempts import Trigger
from relay.deliveries import (
    FAILURES,
    TRIGGER_ATTRIBUTE,
    DeadLetter,
    Decision,
    Done,
    Held,
    ProbeEndpoint,
    QueuedResponse,
    Release,
    ResumeParked,
    Retry,
    StopConversation,
)
from relay.models import ClientResponse


class NotDone(Exception):
    """Reported to the batch processor for a message that stays in the queue."""


class DeliveryQueue:
    """The queue's operations the function makes itself."""

    def __init__(self, sqs: Any, queue_url: str, dead_letter_queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._dead_letters = dead_letter_queue_url

    def batch(self, event: dict[str, Any]) -> QueuedBatch:
        return QueuedBatch(self, event)

    def set_visibility(self, seconds_by_handle: Sequence[tuple[str, int]]) -> None:
        """When each message is received again: a retry's delay, a stop's hold, 0 for one released untried."""
        for start in range(0, len(seconds_by_handle), BATCH_ENTRIES):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for i, (handle, seconds) in enumerate(seconds_by_handle[start : start + BATCH_ENTRIES])
            ]
            answer = self._sqs.change_message_visibility_batch(QueueUrl=self._url, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"delivery queue refused visibility changes: {answer['Failed']}")

    def nudge(self, client_id: str, conversation_ids: Sequence[str]) -> None:
        """A ResumeParked in each conversation's message group: its parked responses go before what follows."""
        Redelivery(self._sqs, self._url).nudge(client_id, conversation_ids)

    def probe_later(self, client_id: str) -> None:
        """The parked endpoint's probe: in its own message group, so one at a time."""
        answer = self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=ProbeEndpoint(client_id=client_id).to_json(),
            MessageGroupId=endpoint_group_id(client_id),
            MessageDeduplicationId=str(uuid.uuid4()),
        )
        assert answer["MessageId"]

    def delete(self, records: Sequence[SQSRecord]) -> None:
        """Delete finished messages now, not when the invocation returns."""
        for start in range(0, len(records), BATCH_ENTRIES):
            entries = [
                {"Id": str(i), "ReceiptHandle": record.receipt_handle}
                for i, record in enumerate(records[start : start + BATCH_ENTRIES])
            ]
            # What SQS refuses here, Lambda deletes when the invocation returns: only the early release is lost.
            self._sqs.delete_message_batch(QueueUrl=self._url, Entries=entries)

    def dead_letter(self, records: Sequence[SQSRecord]) -> None:
        """Copy messages to the dead-letter queue in order, in their message group; the caller then deletes them."""
        for start in range(0, len(records), BATCH_ENTRIES):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": record.body,
                    "MessageGroupId": record.attributes.message_group_id,
                    "MessageDeduplicationId": record.message_id,
                    "MessageAttributes": {
                        name: {"DataType": attribute.data_type, "StringValue": attribute.string_value}
                        for name, attribute in record.message_attributes.items()
                        if attribute.string_value is not None
                    },
                }
                for i, record in enumerate(records[start : start + BATCH_ENTRIES])
            ]
            answer = self._sqs.send_message_batch(QueueUrl=self._dead_letters, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"dead-letter queue refused messages: {answer['Failed']}")


class QueuedBatch:
    """One invocation's batch: the queued responses the flow is given, and its decisions applied and reported."""

    def __init__(self, queue: DeliveryQueue, event: dict[str, Any]) -> None:
        self._queue = queue
        self._event = event
        self._records = list(SQSEvent(event).records)
        self.responses = [_queued(record) for record in self._records]
        self._decisions: dict[str, Decision] = {}
        self._lock = threading.Lock()

    def apply(self, decisions: Mapping[str, Decision], release: bool) -> None:
        """Carry out one conversation's decisions (called from its thread as soon as it is done): dead-letter in
        order, delete what is finished when `release` (Lambda would delete it only when the invocation returns),
        and set when the others come back.

        Raises when the dead-letter queue refuses: the invocation fails and the whole batch comes back, rather
        than a message being deleted that is in neither queue.
        """
        with self._lock:
            self._decisions.update(decisions)
        records = [record for record in self._records if record.message_id in decisions]
        self._queue.dead_letter([r for r in records if isinstance(decisions[r.message_id], DeadLetter)])
        if release:
            self._queue.delete([r for r in records if isinstance(decisions[r.message_id], Done | DeadLetter)])
        visibility = []
        for record in records:
            match decisions[record.message_id]:
                case Retry(seconds=seconds) | StopConversation(seconds=seconds) | Held(seconds=seconds):
                    visibility.append((record.receipt_handle, seconds))
                case Release():
                    # Its group stays blocked until the failed message before it is done.
                    visibility.append((record.receipt_handle, 0))
        self._queue.set_visibility(visibility)

    def report(self, processor: SqsFifoPartialProcessor, context: LambdaContext) -> PartialItemFailureResponse:
        """The batch's failures to Lambda (Powertools' FIFO processor): what stays in the queue."""
        return process_partial_response(
            event=self._event, record_handler=self._outcome_of, processor=processor, context=context
        )

    def _outcome_of(self, record: SQSRecord) -> None:
        decision = self._decisions[record.message_id]
        if isinstance(decision, FAILURES):
            raise NotDone(decision.reason)


def _queued(record: SQSRecord) -> QueuedResponse:
    response: ClientResponse | None = None
    resume: ResumeParked | None = None
    probe: ProbeEndpoint | None = None
    try:
        response = ClientResponse.model_validate_json(record.body)
    except ValidationError:
        with contextlib.suppress(ValidationError):
            resume = ResumeParked.model_validate_json(record.body)
        if resume is None:
            with contextlib.suppress(ValidationError):  # none of them: the flow dead-letters it
                probe = ProbeEndpoint.model_validate_json(record.body)
    attribute = record.message_attributes[TRIGGER_ATTRIBUTE]  # its get() would give the raw dict
    trigger = attribute.string_value if attribute is not None else None
    return QueuedResponse(
        message_id=record.message_id,
        conversation=record.attributes.message_group_id or record.message_id,
        body=record.body,
        response=response,
        resume=resume,
        probe=probe,
        receive_count=int(record.attributes.approximate_receive_count or 1),
        trigger=Trigger.RECOVER if trigger == Trigger.RECOVER else Trigger.SCHEDULE,
    )
