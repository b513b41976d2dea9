"""POST /bot/responses/{secret} (relay.edge.bot_api): check the secret, look the conversation up, publish the
response to the topic."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.adapters.publisher import ResponsePublisher
from relay.edge import bot_api
from relay.edge.runtime import Secrets
from relay.flows.bot_responses import BotResponses
from relay.observability import logger, metrics, tracer
from relay.settings import BotResponseSettings
from relay.stores.conversations import ConversationStore

settings = BotResponseSettings.from_environment()
secrets = Secrets(boto3.client("secretsmanager"))
bot_responses = BotResponses(
    ConversationStore(
        boto3.client("dynamodb"), settings.conversations_table, cache_ttl_seconds=settings.cache_ttl_seconds
    ),
    ResponsePublisher(boto3.client("sns"), settings.responses_topic_arn),
)
app = bot_api.resolver(bot_responses, secrets.of(settings.bot_response_secret), settings.max_body_bytes)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
