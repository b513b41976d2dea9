"""Recording responses: one message of the responses log's queue into the responses log, in the bot's order, then
a nudge to the stream, whose frames come from the log (relay.flows.stream)."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from relay.flows.stream import Nudges
from relay.models import ClientResponse
from relay.observability import logger, metrics
from relay.stores.responses_log import ResponsesLog


def record_from_queue(log: ResponsesLog, stream: Nudges, record: SQSRecord) -> None:
    """One message of the log's queue into the log, then the stream nudged; raising leaves it to be retried, then
    dead-lettered."""
    try:
        response = ClientResponse.model_validate_json(record.body)
    except ValidationError:
        logger.error("malformed response on the responses log queue", extra={"sqs_message_id": record.message_id})
        raise
    position = int(record.attributes.sequence_number or "")  # every FIFO message has one
    ids = {
        "client_id": response.client_id,
        "conversation_id": response.conversation_id,
        "bot_message_id": response.botpress_message_id,
    }
    if log.record(position, response, record.body):
        metrics.add_metric(name="ResponseRecorded", unit=MetricUnit.Count, value=1)
        logger.info("recorded in the responses log", extra=ids)
    else:
        logger.info("already recorded: a redelivered message", extra=ids)
    # Also after a redelivery: its first copy may have been recorded and its nudge lost.
    stream.send(response.client_id, response.conversation_id, f"log-{position}")
