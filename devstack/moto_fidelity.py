"""Where moto differs from AWS in a way the relay depends on, made to behave as AWS does."""

from __future__ import annotations

import itertools
import threading
from typing import Any

_lock = threading.RLock()
"""Held for the fixes' installation and for each SQS call made atomic."""
_item_lock = threading.RLock()
"""Held for each DynamoDB write: a table's writes need not wait for a queue's receive."""
_installed = False


def behave_as_aws() -> None:
    """Install each fix below in this process (the one that runs moto). Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        _growing_fifo_sequence_numbers()
        _atomic_queue_calls()
        _atomic_item_writes()
        _installed = True


def _growing_fifo_sequence_numbers() -> None:
    """SQS gives each FIFO message a SequenceNumber that grows within its message group; moto draws it at random.

    The responses log orders a conversation by it, so here a message takes the next number of one counter
    as it joins its queue, under a lock, so queue order and number order agree."""
    from moto.sqs.models import Queue

    add_message = Queue.add_message
    numbers = itertools.count(10**19)  # 20 digits, like SQS's

    def numbered(queue: Any, message: Any) -> None:
        with _lock:
            if queue.fifo_queue:
                message.sequence_number = str(next(numbers))
            add_message(queue, message)

    Queue.add_message = numbered


def _atomic_queue_calls() -> None:
    """SQS applies each call to a queue whole; moto's queue is plain lists and sets, changed by server threads at
    once. The delivery function deletes a conversation's messages itself while a poller receives (a fresh-clone run
    once did not drain, every response delivered). Each receive (without a long
    poll, which would hold the others up), delete and visibility change runs under the same lock as a send."""
    from moto.sqs.models import SQSBackend

    def unless_waiting(call: Any) -> Any:
        locked = _atomic(call)

        def guarded(backend: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("wait_seconds_timeout") or (args[2] if len(args) > 2 else 0):
                return call(backend, *args, **kwargs)
            return locked(backend, *args, **kwargs)

        return guarded

    SQSBackend.receive_message = unless_waiting(SQSBackend.receive_message)
    for name in (
        "delete_message",
        "delete_message_batch",
        "change_message_visibility",
        "change_message_visibility_batch",
    ):
        setattr(SQSBackend, name, _atomic(getattr(SQSBackend, name)))


def _atomic_item_writes() -> None:
    """DynamoDB checks a write's condition and makes the write as one step; moto checks, then writes, so two
    threads can both pass a condition only one of them should (two executions both parking an endpoint each
    queued its probe, and the second probe was held forever behind the first). Each write runs under the lock."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name), _item_lock))


def _atomic(call: Any, lock: threading.RLock = _lock) -> Any:
    def guarded(backend: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return call(backend, *args, **kwargs)

    return guarded
