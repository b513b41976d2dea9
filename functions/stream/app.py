"""Stream queue (SQS FIFO) → frames to each nudged conversation's open connections: the flow is relay.flows.stream."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.adapters.connections_api import ConnectionsApi
from relay.adapters.nudges import StreamNudges
from relay.edge.runtime import ClientOnFirstUse, Secrets, conversation_ordered_processor
from relay.flows.stream import Stream
from relay.observability import logger, metrics, tracer
from relay.settings import StreamSettings
from relay.stores.connections import ConnectionStore
from relay.stores.responses_log import ResponsesLog
from relay.watermarks import Watermarks

settings = StreamSettings.from_environment()

dynamodb = boto3.client("dynamodb")
secrets = Secrets(boto3.client("secretsmanager"))
stream = Stream(
    ResponsesLog(dynamodb, settings.responses_table),
    ConnectionStore(dynamodb, settings.connections_table),
    ConnectionsApi.at(str(settings.stream_connections_url)),
    Watermarks(secrets.of(settings.watermark_key_secret)),
    # Only a connection still connecting needs the queue's client: made then, not at every cold start.
    StreamNudges(ClientOnFirstUse("sqs"), settings.stream_queue_url),
)
# A failure holds up only its conversation: its nudges come back in order, the others go on.
processor = conversation_ordered_processor()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=stream.batch_handler(), processor=processor, context=context
    )
