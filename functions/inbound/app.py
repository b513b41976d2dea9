"""The client API: POST /messages (forward to the bot; ?wait for its responses), GET /conversations/{conversationId}/
responses (read the responses log) and conversation tokens; CORS for browsers on the routes they may call."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.edge.api import browser_cors, create_resolver, request_body
from relay.edge.browser import module_response
from relay.edge.runtime import tracer
from relay.flows.inbound import POLL_REFUSALS, REFUSALS, Inbound
from relay.flows.tokens import TOKEN_REFUSALS, Tokens
from relay.settings import InboundSettings

logger = Logger()
metrics = Metrics()

settings = InboundSettings.from_environment()
inbound = Inbound.from_settings(settings)
tokens = Tokens(inbound.access, settings.stream_url, settings.max_body_bytes)
cors = browser_cors(settings.browser_origins)
app = create_resolver(*dict.fromkeys(REFUSALS + POLL_REFUSALS + TOKEN_REFUSALS), cors=cors)


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
