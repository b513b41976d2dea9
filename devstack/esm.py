"""Feeds a function from an SQS queue the way Lambda's event source mapping does."""

from __future__ import annotations

import threading
import time
from typing import Any

from devstack.console import say
from devstack.lambdas import Invocable, sqs_event

_IDLE_SECONDS = (0.05, 0.1, 0.25, 0.5)
"""How long the queue goes unreceived while idle (growing while it stays empty), unless a poller is woken."""
_LONGEST_IDLE_WHILE_INVOKING = 0.25
"""The longest of those while an invocation of the mapping runs: the function may release messages itself
meanwhile (the delivery function deletes a conversation's delivered responses before its batch is done), which no
wake announces. Only a mapping with nothing running backs off further (an idle stack's receives took a tenth of a
core)."""


class EventSourceMapping:
    """Batches from the queue to the function; what it does not report failed is deleted.

    The failed messages stay in flight until their visibility timeout ends, as with Lambda. Each of the mapping's
    pollers (`run`) makes one invocation at a time, so as many pollers as the mapping's concurrency run: for a FIFO
    queue Lambda invokes the function as many times at once as there are message groups with messages to hand out,
    up to the mapping's MaximumConcurrency. A poller whose receive filled a batch wakes another at once, since more
    groups may be waiting; SQS hands out no group that is in flight, so the pollers beyond the active groups find
    nothing and idle.
    """

    def __init__(self, sqs: Any, function: Invocable) -> None:
        assert function.spec.queue_url, f"{function.spec.name} has no SQS event source"
        self._sqs = sqs
        self._function = function
        self.queue_url: str = function.spec.queue_url
        # moto's FIFO receive decides which message groups are in flight from a snapshot it takes when it
        # starts (and retakes mid-way when it meets a message whose visibility ran out): a delete landing
        # during a receive lets it hand out a later message of a group while an earlier one waits. So the
        # queue sees one receive or delete of ours at a time, and never a long poll (its snapshot goes stale).
        self._queue = threading.Lock()
        self._woken = threading.Condition()
        self._wakes = 0
        self._received_for = 0
        """The count of wakes when the latest receive started: a receive after that sees all they announced."""
        self._received_at = 0.0
        self._invoking = 0
        """Invocations of this mapping running now."""
        attributes = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.queue_arn: str = attributes["QueueArn"]

    def poll(self, unless_received_within: float = 0.0) -> int:
        """One receive and invocation; returns how many messages the function was given. No receive (and 0) when
        another poller has received within `unless_received_within` seconds and nobody has woken us since."""
        with self._queue:
            with self._woken:
                now = time.monotonic()
                if self._received_for == self._wakes and now < self._received_at + unless_received_within:
                    return 0
                self._received_for, self._received_at = self._wakes, now
            messages = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self._function.spec.batch_size,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        if not messages:
            return 0
        if len(messages) == self._function.spec.batch_size:
            self.wake()  # more message groups may be waiting: another poller takes them while this one invokes
        with self._woken:
            self._invoking += 1
            self._woken.notify_all()  # idle pollers wait the shorter interval from now
        try:
            result = self._function.invoke(sqs_event(messages, self.queue_arn)) or {}
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        except Exception as error:
            say("event-source", f"{error}: the batch of {len(messages)} comes back after its visibility timeout")
            failed = {message["MessageId"] for message in messages}
        finally:
            with self._woken:
                self._invoking -= 1
        done = [message for message in messages if message["MessageId"] not in failed]
        with self._queue:
            for start in range(0, len(done), 10):
                self._sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
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
        (a retried message comes back unannounced when its visibility timeout ends), less while an invocation runs.
        Pollers share that receive, and the one a wake calls for: on an empty queue, a moto receive costs about as
        much as on a full one.
        """
        idle = 0
        while not stop.is_set():
            try:
                idle = 0 if self.poll(self._idle_seconds(idle)) else min(idle + 1, len(_IDLE_SECONDS) - 1)
            except Exception as error:  # a poller outlives a failed receive or delete, as Lambda's does
                say("event-source", f"polling {self.queue_url.rsplit('/', 1)[-1]} failed: {error}")
                stop.wait(1)
                continue
            with self._woken:
                while self._received_for == self._wakes and not stop.is_set():
                    due = self._received_at + self._idle_seconds(idle) - time.monotonic()
                    if due <= 0:
                        break
                    self._woken.wait(due)

    def _idle_seconds(self, idle: int) -> float:
        seconds = _IDLE_SECONDS[idle]
        return min(seconds, _LONGEST_IDLE_WHILE_INVOKING) if self._invoking else seconds
