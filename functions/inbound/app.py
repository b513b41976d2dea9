"""The client API (relay.edge.client_api): messages to the bot, the responses log, conversation tokens."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.edge import client_api
from relay.edge.runtime import Secrets
from relay.observability import logger, metrics, tracer
from relay.settings import InboundSettings

settings = InboundSettings.from_environment()
api = client_api.compose(settings, boto3.client("dynamodb"), Secrets(boto3.client("secretsmanager")))
app = client_api.resolver(settings, api)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    api.inbound.starting(context)
    return app.resolve(event, context)
