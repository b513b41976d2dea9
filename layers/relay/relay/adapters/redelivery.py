"""Putting on the delivery queue from outside the topic: a nudge that resumes a parked conversation, or responses
delivered again from the responses log (a recover, an operator's replay). Each goes in its conversation's message
group, so it is delivered in the conversation's order, and carries a fresh deduplication id: a second recover
within SQS's 5-minute deduplication window is still one. Light to import: the client API puts nudges too."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from relay.adapters.publisher import message_attributes, message_group_id
from relay.attempts import Trigger
from relay.deliveries import TRIGGER_ATTRIBUTE, ResumeParked
from relay.models import ClientResponse

BATCH_ENTRIES = 10
"""SQS's most entries per batch call."""


class Redelivery:
    def __init__(self, sqs: Any, delivery_queue_url: str) -> None:
        self._sqs = sqs
        self._url = delivery_queue_url

    def nudge(self, client_id: str, conversation_ids: Sequence[str]) -> None:
        """A ResumeParked in each conversation's message group: its parked responses go before what follows."""
        self._send(
            [
                (
                    message_group_id(client_id, conversation_id),
                    ResumeParked(client_id=client_id, conversation_id=conversation_id).to_json(),
                    {},
                )
                for conversation_id in conversation_ids
            ],
            "resume nudges",
        )

    def requeue(self, bodies: Sequence[str]) -> None:
        """Responses (each as published, byte for byte) for delivery again, in this order, with their webhook-ids
        and routing attributes; their attempts are recorded as a recover's."""
        entries = []
        for body in bodies:
            response = ClientResponse.model_validate_json(body)
            attributes = {
                **message_attributes(response),
                TRIGGER_ATTRIBUTE: {"DataType": "String", "StringValue": Trigger.RECOVER},
            }
            entries.append((message_group_id(response.client_id, response.conversation_id), body, attributes))
        self._send(entries, "recovered responses")

    def _send(self, messages: Sequence[tuple[str, str, dict[str, Any]]], what: str) -> None:
        for start in range(0, len(messages), BATCH_ENTRIES):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": body,
                    "MessageGroupId": group,
                    "MessageDeduplicationId": str(uuid.uuid4()),
                    **({"MessageAttributes": attributes} if attributes else {}),
                }
                for i, (group, body, attributes) in enumerate(messages[start : start + BATCH_ENTRIES])
            ]
            answer = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"delivery queue refused {what}: {answer['Failed']}")
