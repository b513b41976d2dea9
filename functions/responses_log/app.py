"""Responses log queue (SQS FIFO) → the responses table, each conversation in the bot's order → a stream nudge,
when a browser has the conversation open."""

from __future__ import annotations

from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.adapters.nudges import StreamNudges
from relay.edge.runtime import conversation_ordered_processor
from relay.flows.recording import record_from_queue
from relay.observability import logger, metrics, tracer
from relay.settings import ResponsesLogSettings
from relay.stores.connections import ConnectionStore
from relay.stores.responses_log import ResponsesLog

settings = ResponsesLogSettings.from_environment()
dynamodb = boto3.client("dynamodb")
log = ResponsesLog(dynamodb, settings.responses_table, settings.response_retention_days)
connections = ConnectionStore(dynamodb, settings.connections_table)
stream = StreamNudges(boto3.client("sqs"), settings.stream_queue_url)
# The log never records past a response it has not written: a failure holds up its conversation.
processor = conversation_ordered_processor()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=partial(record_from_queue, log, connections, stream),
        processor=processor,
        context=context,
    )
