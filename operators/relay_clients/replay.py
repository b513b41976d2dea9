"""Replaying a conversation from the responses log to its client's webhook, through the delivery queue.

The responses go on the delivery queue, in the conversation's message group and in the bot's order, so the
delivery function signs, orders and retries them as it does any response; their `webhook-id` is the one they
had, so a receiver that kept them drops the repeats. Nothing is published again: SNS subscribers and the log
itself see no copy.
"""

from __future__ import annotations

import uuid
from typing import Any

from relay.adapters.publisher import message_attributes, message_group_id
from relay.models import ClientResponse
from relay.stores.responses_log import PAGE_MAX_RESPONSES, ResponsesLog


def replay(
    log: ResponsesLog, sqs: Any, delivery_queue_url: str, client_id: str, conversation_id: str, dry_run: bool
) -> int:
    """Queue every retained response of the conversation for delivery, oldest first; returns how many."""
    position, count = 0, 0
    while page := log.after(client_id, conversation_id, position, PAGE_MAX_RESPONSES):
        for entry in page:
            if not dry_run:
                response = ClientResponse.model_validate_json(entry.body)
                sqs.send_message(
                    QueueUrl=delivery_queue_url,
                    MessageBody=entry.body,
                    MessageGroupId=message_group_id(client_id, conversation_id),
                    # A fresh id: a replay within SQS's 5-minute deduplication window is still a replay.
                    MessageDeduplicationId=str(uuid.uuid4()),
                    MessageAttributes=message_attributes(response),
                )
            count += 1
        position = page[-1].position
    return count
