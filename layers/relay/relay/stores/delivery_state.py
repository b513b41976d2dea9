"""The delivery state table: attempt counters of failing responses, and where conversations stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

STATE_TTL_SECONDS = 15 * 24 * 3600
"""An attempt counter outlives any message it counts for: SQS keeps a message 14 days at most."""


@dataclass(frozen=True)
class Stop:
    """Where a conversation's delivery stopped, and whether its messages have been dead-lettered yet."""

    webhook_id: str
    dead_lettered: bool


class DeliveryState:
    """Attempt counters (one item per response, written only when an attempt fails) and conversation stops."""

    def __init__(self, dynamodb: Any, table_name: str, clients_table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._clients = clients_table

    def failed_attempt(self, webhook_id: str) -> int:
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

    def stop(self, client_id: str, conversation_id: str, webhook_id: str) -> None:
        """Stop the conversation at this response; counted on the client record so every container looks it up."""
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **_stop_key(client_id, conversation_id),
                                "webhookId": {"S": webhook_id},
                                "deadLettered": {"BOOL": False},
                            },
                            "ConditionExpression": "attribute_not_exists(id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._clients,
                            "Key": {"clientId": {"S": client_id}},
                            "UpdateExpression": "ADD stoppedConversations :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ]
            )
        except self._dynamodb.exceptions.TransactionCanceledException as error:
            if not _condition_failed(error):
                raise  # stopped already (an earlier try got this far): nothing to add

    def stop_of(self, client_id: str, conversation_id: str) -> Stop | None:
        item = self._dynamodb.get_item(
            TableName=self._table, Key=_stop_key(client_id, conversation_id), ConsistentRead=True
        ).get("Item")
        return Stop(item["webhookId"]["S"], item["deadLettered"]["BOOL"]) if item else None

    def dead_lettered(self, client_id: str, conversation_id: str) -> None:
        self._dynamodb.update_item(
            TableName=self._table,
            Key=_stop_key(client_id, conversation_id),
            UpdateExpression="SET deadLettered = :yes",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    def resume(self, client_id: str, conversation_id: str, webhook_id: str) -> None:
        """The response the conversation stopped at is back (a redrive): go on, with a fresh schedule for it."""
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": _stop_key(client_id, conversation_id),
                            "ConditionExpression": "attribute_exists(id)",
                        }
                    },
                    {"Delete": {"TableName": self._table, "Key": _attempts_key(webhook_id)}},
                    {
                        "Update": {
                            "TableName": self._clients,
                            "Key": {"clientId": {"S": client_id}},
                            "UpdateExpression": "ADD stoppedConversations :minus",
                            "ConditionExpression": "stoppedConversations > :zero",
                            "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":zero": {"N": "0"}},
                        }
                    },
                ]
            )
        except self._dynamodb.exceptions.TransactionCanceledException as error:
            if not _condition_failed(error):
                raise


def _attempts_key(webhook_id: str) -> dict[str, Any]:
    return {"id": {"S": f"attempts#{webhook_id}"}}


def _stop_key(client_id: str, conversation_id: str) -> dict[str, Any]:
    # A client id holds no '#', so the key names one conversation of one client.
    return {"id": {"S": f"stop#{client_id}#{conversation_id}"}}


def _condition_failed(error: Any) -> bool:
    reasons = error.response.get("CancellationReasons") or []
    return any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons)
