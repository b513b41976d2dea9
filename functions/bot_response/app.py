"""POST /bot/responses/{secret}: check the secret, look the conversation up, publish the response to the topic."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.edge.api import create_resolver, request_body
from relay.edge.runtime import tracer
from relay.flows.bot_responses import REFUSALS, BotResponses
from relay.settings import BotResponseSettings

logger = Logger()
metrics = Metrics()

bot_responses = BotResponses.from_settings(BotResponseSettings.from_environment())
app = create_resolver(*REFUSALS)


@app.post("/bot/responses/<secret>")
def post_bot_response(secret: str) -> dict[str, str]:
    return bot_responses.receive(secret, request_body(app.current_event)).model_dump(by_alias=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
