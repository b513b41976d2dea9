"""Feeds a function from an SQS queue the way Lambda's event source mapping does."""

from __future__ import annotations

import threading
from typing import Any

from devstack.console import say
from devstack.lambdas import Invocable, sqs_event


class EventSourceMapping:
    """Batches from the queue to the function; what it does not report failed is deleted.

    The failed messages stay in flight until their visibility timeout ends, as with Lambda.
    """

    def __init__(self, sqs: Any, function: Invocable) -> None:
        assert function.spec.queue_url, f"{function.spec.name} has no SQS event source"
        self._sqs = sqs
        self._function = function
        self._url = function.spec.queue_url
        # moto's long poll decides which message groups are in flight when it starts, not when a message
        # arrives: two pollers receiving at once could take two messages of one group. Real SQS never does.
        self._receiving = threading.Lock()
        self._arn = sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def poll(self, wait_seconds: int = 0) -> int:
        """One receive and invocation; returns how many messages the function was given."""
        with self._receiving:
            messages = self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=self._function.spec.batch_size,
                WaitTimeSeconds=wait_seconds,
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
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        return len(messages)

    def run(self, stop: threading.Event, wait_seconds: int = 1) -> None:
        """Poll until `stop` is set, as one of the mapping's pollers; a short long-poll keeps stopping quick."""
        while not stop.is_set():
            try:
                self.poll(wait_seconds)
            except Exception as error:  # a poller outlives a failed receive or delete, as Lambda's does
                say("event-source", f"polling {self._url.rsplit('/', 1)[-1]} failed: {error}")
                stop.wait(1)
