"""Where moto differs from AWS in a way the relay depends on, made to behave as AWS does."""

from __future__ import annotations

import itertools
import threading
from typing import Any

_lock = threading.RLock()
_installed = False


def growing_fifo_sequence_numbers() -> None:
    """SQS gives each FIFO message a SequenceNumber that grows within its message group; moto draws it at random.

    The responses log orders a conversation by it, so here a message takes the next number of one counter
    as it joins its queue, under a lock, so queue order and number order agree. Each call on a queue is made
    atomic too (_atomic_queue_calls). Idempotent.
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
        _atomic_queue_calls()
        _installed = True


def _atomic_queue_calls() -> None:
    """SQS applies each call to a queue whole; moto's queue is plain lists and sets, changed by server threads at
    once. The delivery function deletes a conversation's messages itself while a poller receives (a fresh-clone run
    once did not drain, every response delivered). Each receive (without a long
    poll, which would hold the others up), delete and visibility change runs under the same lock as a send."""
    from moto.sqs.models import SQSBackend

    def atomic(call: Any, unless_waiting: bool = False) -> Any:
        def guarded(backend: Any, *args: Any, **kwargs: Any) -> Any:
            waits = unless_waiting and (kwargs.get("wait_seconds_timeout") or (args[2] if len(args) > 2 else 0))
            if waits:
                return call(backend, *args, **kwargs)
            with _lock:
                return call(backend, *args, **kwargs)

        return guarded

    SQSBackend.receive_message = atomic(SQSBackend.receive_message, unless_waiting=True)  # type: ignore[method-assign]
    for name in (
        "delete_message",
        "delete_message_batch",
        "change_message_visibility",
        "change_message_visibility_batch",
    ):
        setattr(SQSBackend, name, atomic(getattr(SQSBackend, name)))
