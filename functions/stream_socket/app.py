"""The WebSocket API (StreamApi, relay.edge.stream_api): $connect, $disconnect and $default; the flow is
relay.flows.stream_socket."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.adapters.nudges import StreamNudges
from relay.edge import stream_api
from relay.edge.access import Access
from relay.edge.runtime import Secrets
from relay.flows.stream_socket import StreamSocket
from relay.observability import logger, metrics, tracer
from relay.settings import StreamSocketSettings
from relay.stores.connections import ConnectionStore
from relay.stores.responses_log import ResponsesLog
from relay.watermarks import Watermarks

settings = StreamSocketSettings.from_environment()

dynamodb = boto3.client("dynamodb")
secrets = Secrets(boto3.client("secretsmanager"))
token_key = secrets.of(settings.conversation_token_key_secret)
access = Access.of(dynamodb, settings.clients_table, settings.cache_ttl_seconds, token_key)
socket = StreamSocket(
    ConnectionStore(dynamodb, settings.connections_table),
    ResponsesLog(dynamodb, settings.responses_table),
    Watermarks(secrets.of(settings.watermark_key_secret)),
    StreamNudges(boto3.client("sqs"), settings.stream_queue_url),
)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return stream_api.route(access, socket, event)
