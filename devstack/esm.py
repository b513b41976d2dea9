"""Feeds a function from an SQS queue the way Lambda's event source mapping does."""

from __future__ import annotations

import threading
import time
from typing import Any

from devstack.console import say
from devstack.lambdas import Invocable, sqs_event

_IDLE_SECONDS = (0.05, 0.1, 0.25)
"""How long the queue goes unreceived while idle (growing while it stays empty), unless a poller is woken."""


class EventSourceMapping:
    """Batches from the queue to the function; what it does not report failed is deleted.

    The failed messages stay in flight until their visibility timeout ends, as with Lambda.
    """

    def __init__(self, sqs: Any, function: Invocable) -> None:
        assert function.spec.queue_url, f"{function.spec.name} has no SQS event source"
        self._sqs = sqs
        self._function = function
        self._url = function.spec.queue_url
        # moto's FIFO receive decides which message groups are in flight from a snapshot it takes when it
        # starts (and retakes mid-way when it meets a message whose visibility ran out): a delete landing
        # during a receive lets it hand out a later message of a group while an earlier one waits. So the
        # queue sees one receive or delete of ours at a time, and never a long poll (its snapshot goes stale).
        self._queue = threading.Lock()
        self._woken = threading.Condition()
        self._wakes = 0
        self._received_at = 0.0
        self._arn = sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def poll(self) -> int:
        """One receive and invocation; returns how many messages the function was given."""
        with self._queue:
            self._received_at = time.monotonic()
            messages = self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=self._function.spec.batch_size,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        if not messages:
            return 0
        try:
            result = self._function.invoke(sqs_event(messages, self._arn)) or {}
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        except Exception as error:
            say("event-source", f"{error}: the batch of {len(messages)} comes back after its visibility timeout")
            failed = {message["MessageId"] for message in messages}
        done = [message for message in messages if message["MessageId"] not in failed]
        with self._queue:
            for start in range(0, len(done), 10):
                self._sqs.delete_message_batch(
                    QueueUrl=self._url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ],
                )
        self.wake()  # the next message of each conversation in the batch may be ready now
        return len(messages)

    def wake(self) -> None:
        """Tell idle pollers to receive now: something may have been sent to the queue or become ready in it."""
        with self._woken:
            self._wakes += 1
            self._woken.notify_all()

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set, as one of the mapping's pollers: at once while there is work or when
        woken, else once the queue has gone unreceived for a short while, which grows while it stays empty
        (a retried message comes back unannounced when its visibility timeout ends). Idle pollers share that
        receive: on an empty queue, a moto receive costs the stack about as much as it would on a full one.
        """
        idle = 0
        while not stop.is_set():
            with self._woken:
                wakes = self._wakes
            try:
                if self.poll():
                    idle = 0
                    continue
            except Exception as error:  # a poller outlives a failed receive or delete, as Lambda's does
                say("event-source", f"polling {self._url.rsplit('/', 1)[-1]} failed: {error}")
                stop.wait(1)
                continue
            with self._woken:
                while self._wakes == wakes and not stop.is_set():
                    due = self._received_at + _IDLE_SECONDS[idle] - time.monotonic()
                    if due <= 0:
                        break
                    self._woken.wait(due)
            idle = min(idle + 1, len(_IDLE_SECONDS) - 1)
