"""The delivery state table: attempt counters of failing responses, and where conversations stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relay.client_status import StoppedConversation
from relay.stores.clients import TransactItem

STATE_TTL_SECONDS = 15 * 24 * 3600
"""An attempt counter outlives any message it counts for: SQS keeps a message 14 days at most."""

STOPS_INDEX = "byStoppedClient"
"""A sparse index of the stop items alone, by client (only they carry `stoppedClient`): a client's stopped
conversations are one query, and only a stop's put and delete write to it."""


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
                    "stoppedClient": {"S": client_id},
                    "stoppedAt": {"S": datetime.now(UTC).isoformat()},
                },
                "ConditionExpression": "attribute_not_exists(id)",
            }
        }
        # Stopped already (an earlier try got this far): nothing to add.
        self._transact([stop, counted])

    def stops_of(self, client_id: str) -> list[StoppedConversation]:
        """The client's stopped conversations (STOPS_INDEX)."""
        stopped = []
        for page in self._dynamodb.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=STOPS_INDEX,
            KeyConditionExpression="stoppedClient = :client",
            ExpressionAttributeValues={":client": {"S": client_id}},
        ):
            stopped += [
                StoppedConversation(
                    conversation_id=item["id"]["S"].removeprefix(f"stop#{client_id}#"),
                    webhook_id=item["webhookId"]["S"],
                    since=item["stoppedAt"]["S"] if "stoppedAt" in item else None,
                )
                for item in page["Items"]
            ]
        return stopped

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


def _stop_key(client_id: str, conversation_id: str) -> dict[str, Any]:
    # A client id holds no '#', so the key names one conversation of one client.
    return {"id": {"S": f"stop#{client_id}#{conversation_id}"}}
