"""POST /bot/responses/{secret}: the secret checked, the body read (relay.edge.bot_api) · look the conversation up ·
publish to the topic."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from relay.adapters.publisher import ResponsePublisher
from relay.errors import InvalidRequest, RelayError, TooLarge, UnknownConversation, WrongSecret
from relay.models import BotResponse, BotResponseReceipt, ClientResponse, InstallProbe
from relay.observability import logger, metrics
from relay.stores.conversations import ConversationStore

REFUSALS: tuple[type[RelayError], ...] = (WrongSecret, InvalidRequest, TooLarge, UnknownConversation)
"""What POST /bot/responses/{secret} can refuse a request with: its handler answers these, openapi.yaml describes
them."""


class BotResponses:
    def __init__(self, conversations: ConversationStore, publisher: ResponsePublisher) -> None:
        self._conversations = conversations
        self._publisher = publisher

    def receive(self, response: BotResponse | InstallProbe) -> BotResponseReceipt:
        """One bot message: published in its conversation's message group, or `ok` for the install probe."""
        if isinstance(response, InstallProbe):
            logger.info("install probe answered")
            return BotResponseReceipt(status="ok")
        logger.append_keys(bot_conversation_id=response.conversation_id, bot_message_id=response.botpress_message_id)
        conversation = self._conversations.find(response.conversation_id)
        if conversation is None:
            metrics.add_metric(name="Unroutable", unit=MetricUnit.Count, value=1)
            logger.warning("bot response for an unknown conversation: not published")
            raise UnknownConversation(
                f"unknown conversation '{response.conversation_id}': it was not sent through this relay"
            )
        logger.append_keys(client_id=conversation.client_id, conversation_id=conversation.conversation_id)
        self._publisher.publish(ClientResponse.route(response, conversation))
        metrics.add_metric(name="Published", unit=MetricUnit.Count, value=1)
        logger.info("published to the responses topic")
        return BotResponseReceipt(status="published")
