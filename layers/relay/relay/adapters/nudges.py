"""The stream queue (SQS FIFO): nudges to the stream function, one message group per conversation."""

from __future__ import annotations

from typing import Any

from relay.adapters.publisher import message_group_id
from relay.models import StreamNudge


class StreamNudges:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def send(self, client_id: str, conversation_id: str, deduplication_id: str) -> None:
        """Nudge the conversation's group; the same `deduplication_id` within five minutes is sent once."""
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=StreamNudge(client_id=client_id, conversation_id=conversation_id).to_json(),
            MessageGroupId=message_group_id(client_id, conversation_id),
            MessageDeduplicationId=deduplication_id,
        )
