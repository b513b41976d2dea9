"""The responses log: each bot response per (client, conversation), in the bot's order, for polling and `?wait`.

Its position in a conversation is the SQS sequence number the response got on the log's FIFO queue: it grows
within a message group (a conversation), and the queue hands a group's messages over one at a time, so a
response is never written behind one already readable. Writing is keyed on that position, so a redelivered
message is not recorded twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from relay.models import ClientResponse, scoped

POSITION_DIGITS = 40
"""SQS sequence numbers are 128-bit (at most 39 decimal digits); zero-padded, text order is number order."""

PAGE_MAX_RESPONSES = 100
"""The most responses one answer carries (the `limit` query parameter's maximum and default)."""

PAGE_MAX_BYTES = 4 * 1024 * 1024
"""The most response bytes one answer carries: Lambda's 6 MB response limit, with room for the JSON around them."""


@dataclass(frozen=True)
class Recorded:
    """A response as the log holds it: its position, when it was written, and the body as published."""

    position: int
    recorded_at: float
    body: str

    def response(self) -> Any:
        return json.loads(self.body)


class ResponsesLog:
    """The responses table: one partition per conversation, sorted by position."""

    def __init__(self, dynamodb: Any, table_name: str, retention_days: int = 30) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._retention_seconds = retention_days * 86400

    def record(self, position: int, response: ClientResponse, body: str) -> bool:
        """Write the response (`body` as published) at its position; False when that position is already written."""
        now = time.time()
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    "conversationKey": {"S": scoped(response.client_id, response.conversation_id)},
                    "position": {"S": _position_key(position)},
                    "recordedAt": {"N": f"{now:.3f}"},
                    "response": {"S": body},
                    "expiresAt": {"N": str(int(now) + self._retention_seconds)},
                },
                ConditionExpression="attribute_not_exists(#position)",
                ExpressionAttributeNames={"#position": "position"},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def after(self, client_id: str, conversation_id: str, position: int, limit: int) -> list[Recorded]:
        """At most `limit` of the conversation's responses after `position`, oldest first: one consistent query.

        DynamoDB ends a query at 1 MB of items: a page can hold fewer, never more.
        """
        items = self._dynamodb.query(
            TableName=self._table,
            KeyConditionExpression="conversationKey = :conversation AND #position > :after",
            ExpressionAttributeNames={"#position": "position"},
            ExpressionAttributeValues={
                ":conversation": {"S": scoped(client_id, conversation_id)},
                ":after": {"S": _position_key(position)},
            },
            ConsistentRead=True,
            Limit=limit,
        )["Items"]
        return [_from_item(item) for item in items]

    def last_position(self, client_id: str, conversation_id: str) -> int:
        """The position of the conversation's newest response, or 0 when it has none: one consistent query."""
        items = self._dynamodb.query(
            TableName=self._table,
            KeyConditionExpression="conversationKey = :conversation",
            ExpressionAttributeValues={":conversation": {"S": scoped(client_id, conversation_id)}},
            ProjectionExpression="#position",
            ExpressionAttributeNames={"#position": "position"},
            ConsistentRead=True,
            ScanIndexForward=False,
            Limit=1,
        )["Items"]
        return int(items[0]["position"]["S"]) if items else 0


def within_budget(recorded: list[Recorded], used_bytes: int = 0) -> list[Recorded]:
    """The longest head of `recorded` whose bodies fit in what is left of PAGE_MAX_BYTES.

    A single response always fits: SNS carries at most 256 KiB.
    """
    kept: list[Recorded] = []
    for entry in recorded:
        used_bytes += len(entry.body.encode())
        if used_bytes > PAGE_MAX_BYTES:
            break
        kept.append(entry)
    return kept


def _position_key(position: int) -> str:
    return str(position).zfill(POSITION_DIGITS)


def _from_item(item: dict[str, Any]) -> Recorded:
    return Recorded(
        position=int(item["position"]["S"]),
        recorded_at=float(item["recordedAt"]["N"]),
        body=item["response"]["S"],
    )
