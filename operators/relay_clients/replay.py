"""Replaying a conversation from the responses log to its client's webhook, through the delivery queue.

The responses go on the delivery queue, in the conversation's message group and in the bot's order
(relay.adapters.redelivery, as POST /client/recover puts them), so the delivery function signs, orders and
retries them as it does any response; their `webhook-id` is the one they had, so a receiver that kept them drops
the repeats, and their attempts are recorded as a recover's. Nothing is published again: SNS subscribers and the
log itself see no copy.
"""

from __future__ import annotations

from typing import Any

from relay.adapters.redelivery import Redelivery
from relay.stores.responses_log import PAGE_MAX_RESPONSES, ResponsesLog


def replay(
    log: ResponsesLog, sqs: Any, delivery_queue_url: str, client_id: str, conversation_id: str, dry_run: bool
) -> int:
    """Queue every retained response of the conversation for delivery, oldest first; returns how many."""
    position, count = 0, 0
    while page := log.after(client_id, conversation_id, position, PAGE_MAX_RESPONSES):
        if not dry_run:
            Redelivery(sqs, delivery_queue_url).requeue([entry.body for entry in page])
        count += len(page)
        position = page[-1].position
    return count
