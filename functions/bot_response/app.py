"""POST /bot/responses/{secret}: check the secret, look the conversation up, publish the response to the topic."""

from __future__ import annotations

import hmac

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.api import create_resolver, parse_json, read_body
from relay.conversations import ConversationStore
from relay.errors import Forbidden, NotFound
from relay.models import BotResponse, ClientResponse
from relay.responses import ResponsePublisher, is_install_probe
from relay.settings import BotResponseSettings

settings = BotResponseSettings()
logger = Logger()
metrics = Metrics()
tracer = Tracer(patch_modules=["botocore"])

conversations = ConversationStore(
    boto3.client("dynamodb"), settings.conversations_table, cache_ttl_seconds=settings.cache_ttl_seconds
)
publisher = ResponsePublisher(boto3.client("sns"), settings.responses_topic_arn)
path_secret = SecretsProvider(boto3_client=boto3.client("secretsmanager"))
app = create_resolver()


@app.post("/bot/responses/<secret>")
def post_bot_response(secret: str) -> dict[str, str]:
    expected = str(path_secret.get(settings.bot_response_secret, max_age=300))
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        raise Forbidden("wrong secret in the response URL: copy it again from the stack's secret")
    body = parse_json(read_body(app.current_event, settings.max_body_bytes))
    if is_install_probe(body):
        logger.info("install probe answered")
        return {"status": "ok"}

    response = BotResponse.model_validate(body)
    logger.append_keys(bot_conversation_id=response.conversation_id, bot_message_id=response.botpress_message_id)
    conversation = conversations.find(response.conversation_id)
    if conversation is None:
        metrics.add_metric(name="Unroutable", unit=MetricUnit.Count, value=1)
        logger.warning("bot response for an unknown conversation: not published")
        raise NotFound(f"unknown conversation '{response.conversation_id}': it was not sent through this relay")

    logger.append_keys(client_id=conversation.client_id, conversation_id=conversation.conversation_id)
    publisher.publish(ClientResponse.route(response, conversation))
    metrics.add_metric(name="Published", unit=MetricUnit.Count, value=1)
    logger.info("published to the responses topic")
    return {"status": "published"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
