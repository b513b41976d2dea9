"""Conversations: which client and user the bot's conversation id stands for."""

from __future__ import annotations

import time
from typing import Any

from cachetools import TTLCache

from relay.models import Conversation


class ConversationStore:
    """The conversations table. A warm container neither rewrites nor re-reads a conversation it has just seen."""

    def __init__(self, dynamodb: Any, table_name: str, *, ttl_days: int = 90, cache_ttl_seconds: float = 60.0) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._ttl_seconds = ttl_days * 86400
        self._cache: TTLCache[str, Conversation] = TTLCache(maxsize=4096, ttl=cache_ttl_seconds)

    def record(self, conversation: Conversation) -> None:
        """Create or refresh the conversation; it expires `ttl_days` after its last message."""
        if self._cache.get(conversation.bot_conversation_id) == conversation:
            return
        now = int(time.time())
        self._dynamodb.update_item(
            TableName=self._table,
            Key={"botConversationId": {"S": conversation.bot_conversation_id}},
            UpdateExpression=(
                "SET clientId = :client, conversationId = :conversation, userId = :user,"
                " updatedAt = :now, expiresAt = :expires, createdAt = if_not_exists(createdAt, :now)"
            ),
            ExpressionAttributeValues={
                ":client": {"S": conversation.client_id},
                ":conversation": {"S": conversation.conversation_id},
                ":user": {"S": conversation.user_id},
                ":now": {"N": str(now)},
                ":expires": {"N": str(now + self._ttl_seconds)},
            },
        )
        self._cache[conversation.bot_conversation_id] = conversation

    def find(self, bot_conversation_id: str) -> Conversation | None:
        if (cached := self._cache.get(bot_conversation_id)) is not None:
            return cached
        item = self._dynamodb.get_item(
            TableName=self._table,
            Key={"botConversationId": {"S": bot_conversation_id}},
            ProjectionExpression="clientId, conversationId, userId",
        ).get("Item")
        if item is None:
            return None
        conversation = Conversation.model_validate({name: value["S"] for name, value in item.items()})
        self._cache[bot_conversation_id] = conversation
        return conversation
