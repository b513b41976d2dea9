"""POST /messages: authenticate the client, drop a repeated messageId, record the conversation, forward to the bot."""

from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.api import create_resolver, parse_json, read_body
from relay.bot import BotClient
from relay.clients import ClientStore, bearer_token
from relay.conversations import ConversationStore
from relay.errors import BotUnavailable
from relay.models import ClientMessage, InboundMessage, MessageReceipt
from relay.settings import InboundSettings

settings = InboundSettings()
logger = Logger()
metrics = Metrics()
tracer = Tracer(patch_modules=["botocore"])  # not urllib3: URLs stay out of traces

dynamodb = boto3.client("dynamodb")
clients = ClientStore(dynamodb, settings.clients_table, settings.cache_ttl_seconds)
conversations = ConversationStore(
    dynamodb,
    settings.conversations_table,
    ttl_days=settings.conversation_ttl_days,
    cache_ttl_seconds=settings.cache_ttl_seconds,
)
bot_token = SecretsProvider(boto3_client=boto3.client("secretsmanager"))
bot = BotClient(
    str(settings.bot_webhook_url),
    token=lambda: str(bot_token.get(settings.bot_token_secret, max_age=300)),
    timeout_seconds=settings.bot_timeout_seconds,
)


def answer_repeat(receipt: MessageReceipt, _: DataRecord) -> MessageReceipt:
    metrics.add_metric(name="Duplicate", unit=MetricUnit.Count, value=1)
    logger.info("repeated messageId: not forwarded again")
    return receipt.model_copy(update={"status": "duplicate"})


idempotency = IdempotencyConfig(
    event_key_jmespath="[client_id, message.message_id]",
    payload_validation_jmespath="message",
    expires_after_seconds=settings.idempotency_ttl_seconds,
    response_hook=answer_repeat,
)
app = create_resolver()


@idempotent_function(
    data_keyword_argument="inbound",
    config=idempotency,
    persistence_store=DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb),
    output_serializer=PydanticSerializer(model=MessageReceipt),
)
@tracer.capture_method
def forward(inbound: ClientMessage) -> MessageReceipt:
    """Runs once per (client, messageId); a failure releases the messageId so the client can retry."""
    conversations.record(inbound.conversation())
    try:
        bot.forward(inbound.for_bot())
    except BotUnavailable as error:
        metrics.add_metric(name="ForwardFailed", unit=MetricUnit.Count, value=1)
        logger.warning("bot did not take the message", extra={"reason": error.message})
        raise
    metrics.add_metric(name="Forwarded", unit=MetricUnit.Count, value=1)
    logger.info("forwarded to the bot")
    return MessageReceipt(message_id=inbound.message.message_id, conversation_id=inbound.message.conversation_id)


@app.post("/messages")
def post_message() -> dict[str, str]:
    client = clients.authenticate(bearer_token(app.current_event.headers))
    logger.append_keys(client_id=client.client_id)
    message = InboundMessage.model_validate(parse_json(read_body(app.current_event, settings.max_body_bytes)))
    logger.append_keys(conversation_id=message.conversation_id, message_id=message.message_id)
    metrics.add_metric(name="Accepted", unit=MetricUnit.Count, value=1)
    receipt = forward(inbound=ClientMessage(client_id=client.client_id, message=message))
    return receipt.model_dump(by_alias=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    idempotency.register_lambda_context(context)
    return app.resolve(event, context)
