"""The client API on one resolver: POST /messages (forward to the bot; ?wait for its responses), GET
/conversations/{conversationId}/responses (read the responses log), conversation tokens and the browser module;
CORS for browsers on the routes they may call. Its flows are composed here from the function's settings."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from relay.adapters.bot import BotClient
from relay.conversation_tokens import ConversationTokens
from relay.edge.api import browser_cors, create_resolver, request_body
from relay.edge.browser import module_response
from relay.edge.runtime import Secrets
from relay.flows.inbound import POLL_REFUSALS, REFUSALS, Inbound
from relay.flows.polling import ResponsesReader
from relay.flows.throttling import Throttle
from relay.flows.tokens import TOKEN_REFUSALS, Access, Tokens
from relay.settings import InboundSettings
from relay.stores.clients import ClientStore
from relay.stores.conversations import ConversationStore
from relay.stores.rate_limits import RateLimits
from relay.stores.responses_log import ResponsesLog
from relay.watermarks import Watermarks


def compose(settings: InboundSettings, dynamodb: Any, secrets: Secrets) -> tuple[Inbound, Tokens]:
    """The messages-and-responses flow and the token flow, sharing the clients' access, their rates and the
    conversations."""
    conversations = ConversationStore(
        dynamodb,
        settings.conversations_table,
        ttl_days=settings.conversation_ttl_days,
        cache_ttl_seconds=settings.cache_ttl_seconds,
    )
    clients = ClientStore(dynamodb, settings.clients_table, settings.cache_ttl_seconds)
    access = Access(clients, ConversationTokens(secrets.of(settings.conversation_token_key_secret)))
    throttle = Throttle(RateLimits(dynamodb, settings.rate_limits_table), clients, settings.client_rate_limit)
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
        throttle=throttle,
    )
    return inbound, Tokens(access, settings.stream_url, settings.max_body_bytes, throttle=throttle)


def resolver(settings: InboundSettings, inbound: Inbound, tokens: Tokens) -> APIGatewayHttpResolver:
    """The routes, each calling its flow; refusals answered as relay.edge.api maps them."""
    app = create_resolver(
        *dict.fromkeys(REFUSALS + POLL_REFUSALS + TOKEN_REFUSALS), cors=browser_cors(settings.browser_origins)
    )

    @app.post("/messages")
    def post_message() -> dict[str, Any]:
        event = app.current_event
        answer = inbound.accept(event.headers, request_body(event), event.query_string_parameters)
        return answer.model_dump(by_alias=True)

    @app.get("/conversations/<conversation_id>/responses")
    def get_responses(conversation_id: str) -> dict[str, Any]:
        event = app.current_event
        page = inbound.responses(event.headers, conversation_id, event.query_string_parameters)
        return page.model_dump(by_alias=True)

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

    return app
