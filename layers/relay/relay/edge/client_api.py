"""The client API on one resolver: POST /messages (forward to the bot; ?wait for its responses), GET
/conversations/{conversationId}/responses (read the responses log), conversation tokens and the browser module,
the client's self-service (its attempts, its endpoint, its fixes); CORS for browsers on the routes they may call.
Its flows are composed here from the function's settings.

Each route turns the request into a flow's typed inputs, then calls the flow: the caller, authenticated as the
route allows (Access: `caller`, `client` or `conversation`), a path parameter decoded, the query and the body read
into the flow's models (read_query, read_body). The flow decides the rest and raises what refuses the request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from relay.adapters.bot import BotClient
from relay.adapters.operations import OperationsPublisher
from relay.adapters.redelivery import Redelivery
from relay.adapters.webhook import WebhookSender
from relay.attempts import DeliveriesQuery
from relay.conversation_tokens import ConversationTokens
from relay.edge.access import Access
from relay.edge.api import browser_cors, create_resolver, read_body, read_optional_body, read_query
from relay.edge.browser import module_response
from relay.edge.runtime import ClientOnFirstUse, Secrets
from relay.flows.inbound import POLL_REFUSALS, REFUSALS, Inbound
from relay.flows.polling import ReplyWait, ResponsesQuery, ResponsesReader
from relay.flows.self_service import REFUSALS as SELF_SERVICE_REFUSALS
from relay.flows.self_service import ResponseUrlChange, SecretRotation, SelfService
from relay.flows.throttling import Throttle
from relay.flows.tokens import TOKEN_REFUSALS, TokenRequest, Tokens
from relay.models import InboundMessage
from relay.settings import InboundSettings
from relay.stores.attempts import AttemptLog
from relay.stores.clients import ClientStore
from relay.stores.conversations import ConversationStore
from relay.stores.delivery_state import DeliveryState
from relay.stores.rate_limits import RateLimits
from relay.stores.responses_log import ResponsesLog
from relay.watermarks import Watermarks


@dataclass(frozen=True)
class ClientApi:
    """Who is calling, and the flows the routes call."""

    access: Access
    inbound: Inbound
    tokens: Tokens
    self_service: SelfService


def compose(settings: InboundSettings, dynamodb: Any, secrets: Secrets) -> ClientApi:
    """The flows from the function's settings, sharing the conversations, the conversation tokens' key and the
    clients' rates."""
    conversations = ConversationStore(
        dynamodb,
        settings.conversations_table,
        ttl_days=settings.conversation_ttl_days,
        cache_ttl_seconds=settings.cache_ttl_seconds,
    )
    conversation_tokens = ConversationTokens(secrets.of(settings.conversation_token_key_secret))
    clients = ClientStore(dynamodb, settings.clients_table, settings.cache_ttl_seconds)
    throttle = Throttle(
        RateLimits(dynamodb, settings.rate_limits_table),
        clients,
        settings.client_rate_limit,
        # Made at first use: only a client over its rate is told of, at most once a minute.
        events=OperationsPublisher(ClientOnFirstUse("sns"), settings.operations_topic_arn),
    )
    inbound = Inbound(
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
    return ClientApi(
        Access(clients, conversation_tokens),
        inbound,
        Tokens(conversation_tokens, settings.stream_url, throttle=throttle),
        SelfService(
            clients,
            AttemptLog(dynamodb, settings.attempts_table),
            DeliveryState(dynamodb, settings.delivery_state_table),
            WebhookSender(settings.webhook_timeout_seconds),
            # Only a switch-on that resumes parked conversations puts on the queue: its client made then.
            Redelivery(ClientOnFirstUse("sqs"), settings.delivery_queue_url).nudge,
            throttle=throttle,
        ),
    )


def resolver(settings: InboundSettings, api: ClientApi) -> APIGatewayHttpResolver:
    """The routes, each calling its flow; refusals answered as relay.edge.api maps them."""
    app = create_resolver(
        *dict.fromkeys(REFUSALS + POLL_REFUSALS + TOKEN_REFUSALS + SELF_SERVICE_REFUSALS),
        cors=browser_cors(settings.browser_origins),
    )
    access, inbound, tokens, max_bytes = api.access, api.inbound, api.tokens, settings.max_body_bytes
    self_service = api.self_service

    @app.post("/messages")
    def post_message() -> dict[str, Any]:
        event = app.current_event
        caller = access.caller(event.headers)
        wait = read_query(ReplyWait, event).wait
        answer = inbound.accept(caller, read_body(InboundMessage, event, max_bytes), wait)
        return answer.model_dump(by_alias=True)

    @app.get("/conversations/<conversation_id>/responses")
    def get_responses(conversation_id: str) -> dict[str, Any]:
        event = app.current_event
        caller = access.caller(event.headers)
        page = inbound.responses(caller, unquote(conversation_id), read_query(ResponsesQuery, event))
        return page.model_dump(by_alias=True)

    @app.post("/conversations/<conversation_id>/tokens", cors=False)  # a back end's call, never a browser's
    def post_token(conversation_id: str) -> dict[str, Any]:
        event = app.current_event
        caller = access.client(event.headers)
        answer = tokens.mint(caller, unquote(conversation_id), read_body(TokenRequest, event, max_bytes))
        return answer.model_dump(mode="json", by_alias=True)

    @app.post("/tokens/refresh")
    def refresh_token() -> dict[str, Any]:
        grant = access.conversation(app.current_event.headers)
        return tokens.refresh(grant).model_dump(mode="json", by_alias=True)

    # Self-service: a client's back end only (cors=False: a conversation token is refused anyway).

    @app.get("/client", cors=False)
    def get_client() -> dict[str, Any]:
        caller = access.client(app.current_event.headers)
        return self_service.status(caller).model_dump(mode="json", by_alias=True)

    @app.post("/client/test", cors=False)
    def post_client_test() -> dict[str, object]:
        caller = access.client(app.current_event.headers)
        return self_service.test(caller).wire()

    @app.put("/client/response-url", cors=False)
    def put_response_url() -> dict[str, Any]:
        event = app.current_event
        caller = access.client(event.headers)
        status = self_service.set_response_url(caller, read_body(ResponseUrlChange, event, max_bytes))
        return status.model_dump(mode="json", by_alias=True)

    @app.post("/client/signing-secret", cors=False)
    def post_signing_secret() -> dict[str, Any]:
        event = app.current_event
        caller = access.client(event.headers)
        new = self_service.rotate_secret(caller, read_optional_body(SecretRotation, event, max_bytes))
        return new.model_dump(mode="json", by_alias=True)

    @app.get("/deliveries", cors=False)
    def get_deliveries() -> dict[str, Any]:
        event = app.current_event
        caller = access.client(event.headers)
        return self_service.deliveries(caller, read_query(DeliveriesQuery, event)).model_dump(
            mode="json", by_alias=True
        )

    @app.get("/relay-chat.js", cors=False)  # any origin may import it: module_response says so itself
    def browser_module() -> Response[str]:
        return module_response()

    return app
