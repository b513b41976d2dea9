"""Delivery queue (SQS FIFO) → each client's response URL, signed, in order per conversation, retried with backoff."""

from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import SQSFifoMessageGroupCircuitBreakerError
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from relay.clients import ClientStore
from relay.delivery import DeliveryFailed, DeliveryQueue, NotAttempted, deliver, retry_delay
from relay.function import ClientOnFirstUse, tracer
from relay.models import ClientResponse
from relay.settings import DeliverySettings

settings = DeliverySettings()
logger = Logger()
metrics = Metrics()

clients = ClientStore(boto3.client("dynamodb"), settings.clients_table, settings.cache_ttl_seconds)
queue = DeliveryQueue(ClientOnFirstUse("sqs"), settings.delivery_queue_url)  # only failures need it
# A failed message holds up only its own conversation (message group); the others in the batch go on.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False  # failures are reported per message, never as an invocation error


@tracer.capture_method
def deliver_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    if lambda_context.get_remaining_time_in_millis() < (settings.webhook_timeout_seconds + 2) * 1000:
        raise NotAttempted("not enough time left in this invocation")
    attempt = int(record.attributes.approximate_receive_count)
    try:
        response = ClientResponse.model_validate_json(record.body)
    except ValidationError:
        # Waiting will not fix it: retried at once, it reaches the dead-letter queue within a few receives.
        logger.error("malformed response on the delivery queue", extra={"sqs_message_id": record.message_id})
        queue.retry_after(record.receipt_handle, 0)
        raise
    with logger.append_context_keys(
        client_id=response.client_id,
        conversation_id=response.conversation_id,
        webhook_id=response.webhook_id,
        attempt=attempt,
    ):
        deliver_response(response, record, attempt)


def deliver_response(response: ClientResponse, record: SQSRecord, attempt: int) -> None:
    client = clients.get(response.client_id)
    if client is None or not client.enabled or client.response_url is None:
        reason = "unknown client" if client is None else "client disabled" if not client.enabled else "no response URL"
        metrics.add_metric(name="DeliverySkipped", unit=MetricUnit.Count, value=1)
        logger.info("not delivered to a webhook", extra={"reason": reason})
        return
    try:
        deliver(
            str(client.response_url),
            client.webhook_secret,
            response.webhook_id,
            record.body,
            settings.webhook_timeout_seconds,
        )
    except DeliveryFailed as failure:
        delay = retry_delay(attempt, settings.delivery_retry_schedule, settings.delivery_max_attempts)
        last = attempt >= settings.delivery_max_attempts
        metrics.add_metric(name="DeliveryFailed", unit=MetricUnit.Count, value=1)
        logger.warning(
            "last attempt failed: on to the dead-letter queue" if last else "delivery failed: will retry",
            extra={"reason": str(failure), "retry_in_seconds": None if last else delay},
        )
        queue.retry_after(record.receipt_handle, delay)
        raise
    metrics.add_metric(name="Delivered", unit=MetricUnit.Count, value=1)
    logger.info("delivered")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    result = process_partial_response(event=event, record_handler=deliver_record, processor=processor, context=context)
    # Messages never attempted go back at once; their conversation stays blocked behind its failed message.
    queue.release(
        [
            record.receipt_handle
            for record, (kind, _, _) in zip(processor.fail_messages, processor.exceptions, strict=True)
            if kind in (SQSFifoMessageGroupCircuitBreakerError, NotAttempted)
        ]
    )
    return result
