"""Open stream connections: one item per WebSocket connection, in its conversation's partition, with its cursor.

The cursor is the responses-log position the connection has been sent up to. Only the stream function, which
gets a conversation's nudges one at a time (its FIFO message group), moves it; $connect sets it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from relay.models import scoped

CONNECTION_TTL_SECONDS = 2 * 3600 + 600
"""API Gateway closes any WebSocket connection after 2 hours; the item of one whose $disconnect was lost goes later."""

BY_CONNECTION_INDEX = "byConnection"
"""The table's index on the connection id alone (keys only): what $disconnect knows."""


@dataclass(frozen=True)
class Connection:
    client_id: str
    conversation_id: str
    connection_id: str
    cursor: int
    connected_at: float

    @property
    def conversation_key(self) -> str:
        return scoped(self.client_id, self.conversation_id)


class ConnectionStore:
    """The connections table: partition = the conversation (scoped id), sort key = the connection id."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def open(self, connection: Connection) -> None:
        self._dynamodb.put_item(
            TableName=self._table,
            Item={
                "conversationKey": {"S": connection.conversation_key},
                "connectionId": {"S": connection.connection_id},
                "clientId": {"S": connection.client_id},
                "conversationId": {"S": connection.conversation_id},
                "cursor": {"S": str(connection.cursor)},  # 128-bit: more digits than a DynamoDB number holds
                "connectedAt": {"N": f"{connection.connected_at:.3f}"},
                "expiresAt": {"N": str(int(connection.connected_at) + CONNECTION_TTL_SECONDS)},
            },
        )

    def any_open(self, client_id: str, conversation_id: str) -> bool:
        """Whether the conversation has a connection that has not expired. A Select of the count reads the few small
        items but sends none back (the function that asks may only count them)."""
        pages = self._pages(
            client_id,
            conversation_id,
            FilterExpression="expiresAt > :now",
            ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
            Select="COUNT",
        )
        return any(page["Count"] for page in pages)

    def of_conversation(self, client_id: str, conversation_id: str) -> list[Connection]:
        """The conversation's open connections."""
        now = time.time()
        return [
            _from_item(item)
            for page in self._pages(client_id, conversation_id)
            for item in page["Items"]
            if float(item["expiresAt"]["N"]) > now
        ]

    def _pages(self, client_id: str, conversation_id: str, **request: Any) -> Iterator[dict[str, Any]]:
        """The conversation's partition, page after page as it is read, consistently: a $connect recorded before
        the read is in it."""
        values = {
            ":conversation": {"S": scoped(client_id, conversation_id)},
            **request.pop("ExpressionAttributeValues", {}),
        }
        pages: Iterator[dict[str, Any]] = self._dynamodb.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="conversationKey = :conversation",
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            **request,
        )
        return pages

    def advance(self, connection: Connection, cursor: int) -> Connection:
        """Record that the connection has been sent everything up to `cursor`; nothing if it has closed since."""
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=_key(connection),
                UpdateExpression="SET #cursor = :cursor",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeNames={"#cursor": "cursor"},
                ExpressionAttributeValues={":cursor": {"S": str(cursor)}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        return replace(connection, cursor=cursor)

    def remove(self, connection: Connection) -> None:
        self._dynamodb.delete_item(TableName=self._table, Key=_key(connection))

    def close(self, connection_id: str) -> bool:
        """Forget the connection of this id; False when it is not found. Through the index, which is eventually
        consistent: a connection recorded a moment ago may not be found yet, and is then removed when a post to
        it answers Gone, or by its TTL."""
        items = self._dynamodb.query(
            TableName=self._table,
            IndexName=BY_CONNECTION_INDEX,
            KeyConditionExpression="connectionId = :connection",
            ExpressionAttributeValues={":connection": {"S": connection_id}},
        )["Items"]
        for item in items:
            self._dynamodb.delete_item(
                TableName=self._table,
                Key={"conversationKey": item["conversationKey"], "connectionId": item["connectionId"]},
            )
        return bool(items)


def _key(connection: Connection) -> dict[str, Any]:
    return {"conversationKey": {"S": connection.conversation_key}, "connectionId": {"S": connection.connection_id}}


def _from_item(item: dict[str, Any]) -> Connection:
    return Connection(
        client_id=item["clientId"]["S"],
        conversation_id=item["conversationId"]["S"],
        connection_id=item["connectionId"]["S"],
        cursor=int(item["cursor"]["S"]),
        connected_at=float(item["connectedAt"]["N"]),
    )
