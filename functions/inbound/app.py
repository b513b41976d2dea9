"""The client API: POST /messages (forward to the bot; ?wait for its responses) and
GET /conversations/{conversationId}/responses (read the responses log)."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.adapters.bot import BotClient
from relay.edge.api import create_resolver, request_body
from relay.edge.observability import logger, metrics, tracer
from relay.flows.inbound import POLL_REFUSALS, REFUSALS, Inbound
from relay.flows.polling import ResponsesReader
from relay.settings import InboundSettings
from relay.stores.clients import ClientStore
from relay.stores.conversations import ConversationStore
from relay.stores.responses_log import ResponsesLog
from relay.watermarks import Watermarks

settings = InboundSettings.from_environment()
dynamodb = boto3.client("dynamodb")
secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager"))
conversations = ConversationStore(
    dynamodb,
    settings.conversations_table,
    ttl_days=settings.conversation_ttl_days,
    cache_ttl_seconds=settings.cache_ttl_seconds,
)
inbound = Inbound(
    ClientStore(dynamodb, settings.clients_table, settings.cache_ttl_seconds),
    conversations,
    BotClient(
        str(settings.bot_webhook_url),
        token=lambda: str(secrets.get(settings.bot_token_secret, max_age=300)),
        timeout_seconds=settings.bot_timeout_seconds,
    ),
    DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb),
    ResponsesReader(
        ResponsesLog(dynamodb, settings.responses_table),
        conversations,
        Watermarks(lambda: str(secrets.get(settings.watermark_key_secret, max_age=300))),
    ),
    settings,
)
app = create_resolver(*dict.fromkeys(REFUSALS + POLL_REFUSALS))


@app.post("/messages")
def post_message() -> dict[str, Any]:
    event = app.current_event
    return inbound.accept(event.headers, request_body(event), event.query_string_parameters).model_dump(by_alias=True)


@app.get("/conversations/<conversation_id>/responses")
def get_responses(conversation_id: str) -> dict[str, Any]:
    event = app.current_event
    return inbound.responses(event.headers, conversation_id, event.query_string_parameters).model_dump(by_alias=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inbound.starting(context)
    return app.resolve(event, context)
