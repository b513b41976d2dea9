"""POST /bot/responses/{secret}: check the secret · validate · look the conversation up · publish to the topic."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit

from relay.adapters.publisher import ResponsePublisher, is_install_probe
from relay.edge.bodies import parse_json
from relay.errors import InvalidRequest, RelayError, TooLarge, UnknownConversation, WrongSecret
from relay.models import BotResponse, BotResponseReceipt, ClientResponse
from relay.observability import logger, metrics
from relay.stores.conversations import ConversationStore

REFUSALS: tuple[type[RelayError], ...] = (WrongSecret, InvalidRequest, TooLarge, UnknownConversation)
"""What POST /bot/responses/{secret} can refuse a request with: its handler answers these, openapi.yaml describes
them."""


class BotResponses:
    def __init__(
        self,
        conversations: ConversationStore,
        publisher: ResponsePublisher,
        path_secret: Callable[[], str],
        max_body_bytes: int,
    ) -> None:
        self._conversations = conversations
        self._publisher = publisher
        self._path_secret = path_secret
        self._max_body_bytes = max_body_bytes

    def receive(self, secret: str, body: str) -> BotResponseReceipt:
        """One bot message: published in its conversation's message group, or `ok` for the install probe."""
        if not hmac.compare_digest(secret.encode(), self._path_secret().encode()):
            raise WrongSecret("wrong secret in the response URL: copy it again from the stack's secret")
        value = parse_json(body, self._max_body_bytes)
        if is_install_probe(value):
            logger.info("install probe answered")
            return BotResponseReceipt(status="ok")
        response = BotResponse.model_validate(value)
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
