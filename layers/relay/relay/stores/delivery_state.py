"""The delivery state table: attempt counters of failing responses, and where conversations stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relay.client_status import StoppedConversation
from relay.stores.clients import TransactItem

CLIENT_INDEX = "ByClient"
"""The table's sparse index of the items that name a client (parked and stopped conversations), by client: only
their puts and deletes write to it."""

STATE_TTL_SECONDS = 15 * 24 * 3600
"""An attempt counter outlives any message it counts for: SQS keeps a message 14 days at most."""


@dataclass(frozen=True)
class Park:
    """A parked conversation: its first and latest parked responses, and the one a resume has delivered through."""

    first: str
    last: str
    through: str | None = None


@dataclass(frozen=True)
class Stop:
    """Where a conversation's delivery stopped, and whether its messages have been dead-lettered yet."""

    webhook_id: str
    dead_lettered: bool


class DeliveryState:
    """Attempt counters (one item per response, written only when an attempt fails) and conversation stops.

    A stop and its end each change two tables at once: this table's stop item and the count of stopped
    conversations on the client's record. The clients store owns that record, so it supplies its part of the
    transaction (`ClientStore.stop_counted`, `stop_uncounted`), the caller hands it in, and this store runs both
    items as one transaction; neither store writes the other's table.
    """

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def count_failed_attempt(self, webhook_id: str) -> int:
        """Count one more failed attempt of the response; returns how many it has had."""
        answer = self._dynamodb.update_item(
            TableName=self._table,
            Key=_attempts_key(webhook_id),
            UpdateExpression="ADD attempts :one SET expiresAt = :expires",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":expires": {"N": str(int(time.time()) + STATE_TTL_SECONDS)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["attempts"]["N"])

    def failed_attempts(self, webhook_id: str) -> int:
        """How many failed attempts the response has had (0 when none): one consistent read."""
        item = self._dynamodb.get_item(TableName=self._table, Key=_attempts_key(webhook_id), ConsistentRead=True)
        return int(item["Item"]["attempts"]["N"]) if "Item" in item else 0

    def stop(self, client_id: str, conversation_id: str, webhook_id: str, counted: TransactItem) -> None:
        """Stop the conversation at this response, with `counted` (the client's count of stops) in the transaction."""
        stop = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    **_stop_key(client_id, conversation_id),
                    "webhookId": {"S": webhook_id},
                    "deadLettered": {"BOOL": False},
                    "clientId": {"S": client_id},
                    "conversationId": {"S": conversation_id},
                    "stoppedAt": {"S": datetime.now(UTC).isoformat()},
                },
                "ConditionExpression": "attribute_not_exists(id)",
            }
        }
        # Stopped already (an earlier try got this far): nothing to add.
        self._transact([stop, counted])

    def stops_of(self, client_id: str) -> list[StoppedConversation]:
        """The client's stopped conversations (CLIENT_INDEX; a stop written before it named its client is not
        listed)."""
        return [
            StoppedConversation(
                conversation_id=item["conversationId"]["S"],
                webhook_id=item["webhookId"]["S"],
                since=item["stoppedAt"]["S"],
            )
            for item in self._by_client(client_id, "stop#")
        ]

    def stop_of(self, client_id: str, conversation_id: str) -> Stop | None:
        item = self._dynamodb.get_item(
            TableName=self._table, Key=_stop_key(client_id, conversation_id), ConsistentRead=True
        ).get("Item")
        return Stop(item["webhookId"]["S"], item["deadLettered"]["BOOL"]) if item else None

    def mark_dead_lettered(self, client_id: str, conversation_id: str) -> None:
        """The response the conversation stopped at is in the dead-letter queue: when it comes back, it is a redrive."""
        self._dynamodb.update_item(
            TableName=self._table,
            Key=_stop_key(client_id, conversation_id),
            UpdateExpression="SET deadLettered = :yes",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    def resume(self, client_id: str, conversation_id: str, webhook_id: str, uncounted: TransactItem) -> None:
        """The response the conversation stopped at is back (a redrive): go on, with a fresh schedule for it.

        `uncounted` takes the stop off the client's count in the same transaction."""
        # Resumed already (the stop is gone, or the count is zero): nothing to undo.
        self._transact(
            [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": _stop_key(client_id, conversation_id),
                        "ConditionExpression": "attribute_exists(id)",
                    }
                },
                {"Delete": {"TableName": self._table, "Key": _attempts_key(webhook_id)}},
                uncounted,
            ]
        )

    # Parked conversations (relay.endpoints.EndpointState.PARKED): a record per conversation, listed per client
    # through the sparse index on clientId, and counted on the client record in the same transaction.

    def park(self, client_id: str, conversation_id: str, webhook_id: str, counted: TransactItem) -> bool:
        """Park a response: the conversation's first (with `counted`, which must hold for it: the endpoint is still
        parked) or its latest. False when neither applies: the endpoint has been switched on meanwhile."""
        key = _park_key(client_id, conversation_id)
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #last = :id",
                ConditionExpression="attribute_exists(id)",
                ExpressionAttributeNames={"#last": "last"},
                ExpressionAttributeValues={":id": {"S": webhook_id}},
            )
            return True
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            pass
        first = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    **key,
                    "clientId": {"S": client_id},
                    "conversationId": {"S": conversation_id},
                    "first": {"S": webhook_id},
                    "last": {"S": webhook_id},
                },
                "ConditionExpression": "attribute_not_exists(id)",
            }
        }
        try:
            self._dynamodb.transact_write_items(TransactItems=[first, counted])
        except self._dynamodb.exceptions.TransactionCanceledException:
            return False
        return True

    def park_of(self, client_id: str, conversation_id: str) -> Park | None:
        item = self._dynamodb.get_item(
            TableName=self._table, Key=_park_key(client_id, conversation_id), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        through = item.get("through", {}).get("S")
        return Park(item["first"]["S"], item["last"]["S"], through)

    def advance_park(self, client_id: str, conversation_id: str, through: str) -> None:
        """Delivered through this response: a resume that stopped here goes on after it."""
        self._dynamodb.update_item(
            TableName=self._table,
            Key=_park_key(client_id, conversation_id),
            UpdateExpression="SET through = :id",
            ConditionExpression="attribute_exists(id)",
            ExpressionAttributeValues={":id": {"S": through}},
        )

    def unpark(self, client_id: str, conversation_id: str, last: str, uncounted: TransactItem) -> None:
        """Every parked response is delivered: the conversation goes on from the queue. Only while `last` is still
        its latest parked response (a container that still believed the endpoint parked may have added one)."""
        self._transact(
            [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": _park_key(client_id, conversation_id),
                        "ConditionExpression": "#last = :last",
                        "ExpressionAttributeNames": {"#last": "last"},
                        "ExpressionAttributeValues": {":last": {"S": last}},
                    }
                },
                uncounted,
            ]
        )

    def parked(self, client_id: str) -> list[str]:
        """The client's parked conversations (the index is eventually consistent: one parked this instant may be
        missing; it is resumed with its next response)."""
        return [item["conversationId"]["S"] for item in self._by_client(client_id, "park#")]

    def _by_client(self, client_id: str, kind: str) -> list[dict[str, Any]]:
        """The client's items of one kind (`park#`, `stop#`) through CLIENT_INDEX."""
        items = []
        for page in self._dynamodb.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=CLIENT_INDEX,
            KeyConditionExpression="clientId = :client AND begins_with(id, :kind)",
            ExpressionAttributeValues={":client": {"S": client_id}, ":kind": {"S": kind}},
        ):
            items += page["Items"]
        return items

    def _transact(self, items: list[TransactItem]) -> None:
        """Write `items` together; a transaction cancelled by one of their conditions has nothing left to do."""
        try:
            self._dynamodb.transact_write_items(TransactItems=items)
        except self._dynamodb.exceptions.TransactionCanceledException as error:
            reasons = error.response.get("CancellationReasons") or []
            if not any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                raise


def _attempts_key(webhook_id: str) -> dict[str, Any]:
    return {"id": {"S": f"attempts#{webhook_id}"}}


def _park_key(client_id: str, conversation_id: str) -> dict[str, Any]:
    return {"id": {"S": f"park#{client_id}#{conversation_id}"}}


def _stop_key(client_id: str, conversation_id: str) -> dict[str, Any]:
    # A client id holds no '#', so the key names one conversation of one client.
    return {"id": {"S": f"stop#{client_id}#{conversation_id}"}}
