"""Where moto differs from AWS in a way the relay depends on, made to behave as AWS does."""

from __future__ import annotations

import itertools
import threading
from typing import Any

_lock = threading.Lock()
_installed = False


def growing_fifo_sequence_numbers() -> None:
    """SQS gives each FIFO message a SequenceNumber that grows within its message group; moto draws it at random.

    The responses log orders a conversation by it, so here a message takes the next number of one counter
    as it joins its queue, under a lock, so queue order and number order agree. Idempotent.
    """
    global _installed
    from moto.sqs.models import Queue

    with _lock:
        if _installed:
            return
        add_message = Queue.add_message
        numbers = itertools.count(10**19)  # 20 digits, like SQS's

        def numbered(queue: Any, message: Any) -> None:
            with _lock:
                if queue.fifo_queue:
                    message.sequence_number = str(next(numbers))
                add_message(queue, message)

        Queue.add_message = numbered  # type: ignore[method-assign,assignment]
        _installed = True
