"""Delivery of bot responses to a client's response URL, retried by stretching the message's visibility."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from relay import http, webhooks


class DeliveryFailed(Exception):
    """The receiver did not take the response; it is retried after the schedule's next delay."""


class NotAttempted(Exception):
    """The invocation ran out of time before this message's turn; it goes back to the queue at once."""


def deliver(url: str, secret: str, webhook_id: str, body: str, timeout_seconds: float) -> None:
    """POST one response with Standard Webhooks headers; any 2xx is success.

    `body` is sent as published, byte for byte, so what is signed is what consumers of the topic see.
    """
    headers = webhooks.headers(secret, webhook_id, int(time.time()), body)
    try:
        status = http.post(url, body, headers, timeout_seconds)
    except http.PostFailed as failure:
        raise DeliveryFailed(f"receiver {failure}") from failure
    if not 200 <= status < 300:
        raise DeliveryFailed(f"receiver answered HTTP {status}")


def retry_delay(attempt: int, schedule: Sequence[int], max_attempts: int) -> int:
    """Seconds until the next attempt after attempt number `attempt` failed.

    After the last attempt the message is made visible at once, so SQS moves it to the
    dead-letter queue on its next receive.
    """
    if attempt >= max_attempts:
        return 0
    return schedule[min(attempt, len(schedule)) - 1]


class DeliveryQueue:
    """The few queue operations Lambda's event source mapping leaves to the function."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

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
