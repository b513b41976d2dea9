"""The delivery queue: the few operations Lambda's event source mapping leaves to the function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


class DeliveryQueue:
    """The few queue operations Lambda's event source mapping leaves to the function."""

    def __init__(self, sqs: Any, queue_url: str, dead_letter_queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._dead_letters = dead_letter_queue_url

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        self._sqs.change_message_visibility(QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds)

    def release(self, receipt_handles: Sequence[str]) -> None:
        """Make untried messages visible again; their group stays blocked until the failed one before them is done."""
        for start in range(0, len(receipt_handles), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(receipt_handles[start : start + 10])
            ]
            self._sqs.change_message_visibility_batch(QueueUrl=self._url, Entries=entries)

    def dead_letter(self, records: Sequence[SQSRecord]) -> None:
        """Copy messages to the dead-letter queue in order, in their message group; the caller then deletes them."""
        for start in range(0, len(records), 10):
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
                for i, record in enumerate(records[start : start + 10])
            ]
            answer = self._sqs.send_message_batch(QueueUrl=self._dead_letters, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"dead-letter queue refused messages: {answer['Failed']}")
