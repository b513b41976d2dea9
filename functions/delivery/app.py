"""Delivery queue (SQS FIFO) → each client's response URL: the flow is relay.flows.delivery.Delivery."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.adapters.delivery_queue import DeliveryQueue
from relay.adapters.operations import OperationsPublisher
from relay.adapters.webhook import WebhookSender
from relay.edge.runtime import ClientOnFirstUse, conversation_ordered_processor
from relay.flows.delivery import Delivery
from relay.observability import logger, metrics, tracer
from relay.settings import DeliverySettings
from relay.stores.attempts import AttemptLog
from relay.stores.clients import ClientStore
from relay.stores.delivery_state import DeliveryState
from relay.stores.responses_log import ResponsesLog

settings = DeliverySettings.from_environment()
dynamodb = boto3.client("dynamodb")
# SQS and SNS clients made at first use (a batch's deletes; a rare endpoint change or stop), not in the cold start.
queue = DeliveryQueue(ClientOnFirstUse("sqs"), settings.delivery_queue_url, settings.dead_letter_queue_url)
delivery = Delivery(
    settings,
    ClientStore(dynamodb, settings.clients_table, settings.cache_ttl_seconds),
    DeliveryState(dynamodb, settings.delivery_state_table),
    WebhookSender(settings.webhook_timeout_seconds),
    ResponsesLog(dynamodb, settings.responses_table),
    queue,
    attempts=AttemptLog(dynamodb, settings.attempts_table, settings.attempt_retention_days),
    events=OperationsPublisher(ClientOnFirstUse("sns"), settings.operations_topic_arn),
)
processor = conversation_ordered_processor()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    batch = queue.batch(event)
    delivery.run(batch.responses, context.get_remaining_time_in_millis, batch.apply)
    return batch.report(processor, context)
