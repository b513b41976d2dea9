"""The client API: POST /messages (forward to the bot; ?wait for its responses), GET /conversations/{conversationId}/
responses (read the responses log) and conversation tokens; CORS for browsers on the routes they may call."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.adapters.bot import BotClient
from relay.edge.api import browser_cors, create_resolver, request_body
from relay.edge.browser import module_response
from relay.edge.observability import logger, metrics, tracer
from relay.edge.runtime import Secrets
from relay.flows.inbound import POLL_REFUSALS, REFUSALS, Inbound
from relay.flows.polling import ResponsesReader
from relay.flows.tokens import TOKEN_REFUSALS, Access, Tokens
from relay.settings import InboundSettings
from relay.stores.conversations import ConversationStore
from relay.stores.responses_log import ResponsesLog
from relay.watermarks import Watermarks

settings = InboundSettings.from_environment()
dynamodb = boto3.client("dynamodb")
secrets = Secrets(boto3.client("secretsmanager"))
conversations = ConversationStore(
    dynamodb,
    settings.conversations_table,
    ttl_days=settings.conversation_ttl_days,
    cache_ttl_seconds=settings.cache_ttl_seconds,
)
access = Access.of(
    dynamodb,
    settings.clients_table,
    settings.cache_ttl_seconds,
    secrets.of(settings.conversation_token_key_secret),
)
inbound = Inbound(
    access,
    conversations,
    BotClient(
        str(settings.bot_webhook_url),
        token=secrets.of(settings.bot_token_secret),
        timeout_seconds=settings.bot_timeout_seconds,
    ),
    DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb),
    ResponsesReader(
        ResponsesLog(dynamodb, settings.responses_table),
        conversations,
        Watermarks(secrets.of(settings.watermark_key_secret)),
    ),
    settings,
)
tokens = Tokens(access, settings.stream_url, settings.max_body_bytes)
app = create_resolver(
    *dict.fromkeys(REFUSALS + POLL_REFUSALS + TOKEN_REFUSALS), cors=browser_cors(settings.browser_origins)
)


@app.post("/messages")
def post_message() -> dict[str, Any]:
    event = app.current_event
    return inbound.accept(event.headers, request_body(event), event.query_string_parameters).model_dump(by_alias=True)


@app.get("/conversations/<conversation_id>/responses")
def get_responses(conversation_id: str) -> dict[str, Any]:
    event = app.current_event
    return inbound.responses(event.headers, conversation_id, event.query_string_parameters).model_dump(by_alias=True)


@app.post("/conversations/<conversation_id>/tokens", cors=False)  # a back end's call, never a browser's
def post_token(conversation_id: str) -> dict[str, Any]:
    event = app.current_event
    answer = tokens.mint(event.headers, conversation_id, request_body(event))
    return answer.model_dump(mode="json", by_alias=True)


@app.post("/tokens/refresh")
def refresh_token() -> dict[str, Any]:
    return tokens.refresh(app.current_event.headers).model_dump(mode="json", by_alias=True)


@app.get("/relay-chat.js", cors=False)  # any origin may import it: module_response says so itself
def browser_module() -> Response[str]:
    return module_response()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inbound.starting(context)
    return app.resolve(event, context)
