"""POST /messages: authenticate the client · validate · drop a repeated messageId · record the conversation ·
forward to the bot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency import idempotent_function as once_per_key
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.bodies import parse_json
from relay.bot import BotClient
from relay.clients import ClientStore, bearer_token
from relay.conversations import ConversationStore
from relay.errors import (
    BotUnavailable,
    InvalidRequest,
    MessageIdReused,
    MessageInProgress,
    RelayError,
    TooLarge,
    Unauthorized,
)
from relay.models import ClientMessage, InboundMessage, MessageReceipt
from relay.settings import InboundSettings

logger = Logger()  # the function's own logger: the same service, handler and keys
metrics = Metrics()

REFUSALS: tuple[type[RelayError], ...] = (
    Unauthorized,
    InvalidRequest,
    TooLarge,
    MessageInProgress,
    MessageIdReused,
    BotUnavailable,
)
"""What POST /messages can refuse a request with: its handler answers these, openapi.yaml describes them."""

FORWARD_MARGIN_SECONDS = 5.0
"""Besides the bot's timeout, what a forward may take (conversation record, bot token): a crashed forward's
messageId is held (409) this much longer than the bot's timeout, not for the function's whole timeout."""


class ForwardDeadline:
    """The Lambda context as the idempotency record sees it: a forward's in-progress mark expires when the
    forward must have ended, so after a crash the client's retry goes through that soon."""

    def __init__(self, context: LambdaContext, forward_seconds: float) -> None:
        self._context = context  # only the remaining time is read from it
        self._forward_ms = int(forward_seconds * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return min(self._context.get_remaining_time_in_millis(), self._forward_ms)


class Inbound:
    def __init__(
        self,
        clients: ClientStore,
        conversations: ConversationStore,
        bot: BotClient,
        repeats: DynamoDBPersistenceLayer,
        settings: InboundSettings,
    ) -> None:
        self._clients = clients
        self._conversations = conversations
        self._bot = bot
        self._settings = settings
        self._once = IdempotencyConfig(
            event_key_jmespath="[client_id, message.message_id]",
            payload_validation_jmespath="message",
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=_answer_repeat,
        )
        self._forward_once = once_per_key(
            self._forward,
            data_keyword_argument="inbound",
            config=self._once,
            persistence_store=repeats,
            output_serializer=PydanticSerializer(model=MessageReceipt),
            key_prefix="forward",
        )

    @classmethod
    def from_settings(cls, settings: InboundSettings) -> Inbound:
        dynamodb = boto3.client("dynamodb")
        secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager"))
        return cls(
            ClientStore(dynamodb, settings.clients_table, settings.cache_ttl_seconds),
            ConversationStore(
                dynamodb,
                settings.conversations_table,
                ttl_days=settings.conversation_ttl_days,
                cache_ttl_seconds=settings.cache_ttl_seconds,
            ),
            BotClient(
                str(settings.bot_webhook_url),
                token=lambda: str(secrets.get(settings.bot_token_secret, max_age=300)),
                timeout_seconds=settings.bot_timeout_seconds,
            ),
            DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb),
            settings,
        )

    def starting(self, context: LambdaContext) -> None:
        """Called at the start of each invocation."""
        deadline = ForwardDeadline(context, self._settings.bot_timeout_seconds + FORWARD_MARGIN_SECONDS)
        # The idempotency utility reads only the remaining time of the context it is given.
        self._once.register_lambda_context(cast(LambdaContext, deadline))

    def accept(self, headers: Mapping[str, str], body: str) -> MessageReceipt:
        """The client's message, forwarded once per (client, messageId); a repeat answers `duplicate`."""
        client = self._clients.authenticate(bearer_token(headers))
        logger.append_keys(client_id=client.client_id)
        message = InboundMessage.model_validate(parse_json(body, self._settings.max_body_bytes))
        logger.append_keys(conversation_id=message.conversation_id, message_id=message.message_id)
        metrics.add_metric(name="Accepted", unit=MetricUnit.Count, value=1)
        try:
            receipt: MessageReceipt = self._forward_once(
                inbound=ClientMessage(client_id=client.client_id, message=message)
            )
        except IdempotencyAlreadyInProgressError:
            raise MessageInProgress(
                "a message with this messageId is being forwarded right now; retry shortly"
            ) from None
        except IdempotencyValidationError:
            raise MessageIdReused("messageId was already used for a different message; use a new messageId") from None
        return receipt

    def _forward(self, inbound: ClientMessage) -> MessageReceipt:
        """Runs once per (client, messageId); a failure releases the messageId so the client can retry."""
        self._conversations.record(inbound.conversation())
        try:
            self._bot.forward(inbound.for_bot())
        except BotUnavailable as error:
            metrics.add_metric(name="ForwardFailed", unit=MetricUnit.Count, value=1)
            logger.warning("bot did not take the message", extra={"reason": error.message})
            raise
        metrics.add_metric(name="Forwarded", unit=MetricUnit.Count, value=1)
        logger.info("forwarded to the bot")
        return MessageReceipt(message_id=inbound.message.message_id, conversation_id=inbound.message.conversation_id)


def _answer_repeat(response: Any, idempotent_data: DataRecord) -> MessageReceipt:
    metrics.add_metric(name="Duplicate", unit=MetricUnit.Count, value=1)
    logger.info("repeated messageId: not forwarded again")
    return MessageReceipt.model_validate(response).model_copy(update={"status": "duplicate"})
