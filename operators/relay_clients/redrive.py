"""Moving dead-lettered responses back to the delivery queue: all, one client's, or one conversation's, in order."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Long enough to move everything seen; what is not moved is made visible again at the end.
_HOLD_SECONDS = 300


@dataclass
class Redrive:
    """What a redrive moved (or, in a dry run, would move), per conversation, in order."""

    moved: dict[tuple[str, str], int] = field(default_factory=dict)
    left: int = 0


def redrive(
    sqs: Any, dead_letter_queue_url: str, delivery_queue_url: str, wanted: Callable[[str, str], bool], dry_run: bool
) -> Redrive:
    """Move the dead-lettered responses whose (client, conversation) is `wanted`, each group in its order.

    A FIFO queue hands out a message group's messages in order and none while one of them is in flight,
    so each received message is sent back and deleted before the next receive: a conversation is never split.
    """
    result = Redrive()
    untouched: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=dead_letter_queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=_HOLD_SECONDS,
            MessageSystemAttributeNames=["MessageGroupId"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            body = json.loads(message["Body"])
            key = (str(body.get("clientId", "?")), str(body.get("conversationId", "?")))
            if dry_run or not wanted(*key):
                untouched.append(message["ReceiptHandle"])
                if wanted(*key):
                    result.moved[key] = result.moved.get(key, 0) + 1
                else:
                    result.left += 1
                continue
            sqs.send_message(
                QueueUrl=delivery_queue_url,
                MessageBody=message["Body"],
                MessageGroupId=message["Attributes"]["MessageGroupId"],
                MessageDeduplicationId=str(uuid.uuid4()),
                MessageAttributes={
                    name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
                    for name, value in message.get("MessageAttributes", {}).items()
                    if "StringValue" in value
                },
            )
            sqs.delete_message(QueueUrl=dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
            result.moved[key] = result.moved.get(key, 0) + 1
    for start in range(0, len(untouched), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=dead_letter_queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(untouched[start : start + 10])
            ],
        )
    return result
