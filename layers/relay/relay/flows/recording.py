"""Recording responses: one message of the responses log's queue into the responses log, in the bot's order, then
a nudge to the stream, whose frames come from the log (relay.flows.stream), when a browser has the conversation
open.

Why a response the look finds no connection for is not lost to a browser: the look comes after the log's write,
and $connect records its connection before it nudges (relay.flows.stream_socket). Both reads are consistent, so
a look that misses the connection ran before the connection's record was written; the nudge $connect sends after
that record then reads the log after this response's write, and sends it. Without a browser, a response costs the
look (one query) instead of a nudge, a stream invocation and its query.
"""

from __future__ import annotations

from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from relay.flows.stream import Nudges
from relay.models import ClientResponse
from relay.observability import logger, metrics
from relay.stores.responses_log import ResponsesLog


class OpenConnections(Protocol):
    """The connections table (relay.stores.connections.ConnectionStore)."""

    def any_open(self, client_id: str, conversation_id: str) -> bool: ...


def record_from_queue(log: ResponsesLog, connections: OpenConnections, stream: Nudges, record: SQSRecord) -> None:
    """One message of the log's queue into the log, then the stream nudged if the conversation has a connection;
    raising leaves it to be retried, then dead-lettered."""
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
    nudge_if_streamed(connections, stream, response.client_id, response.conversation_id, f"log-{position}")


def nudge_if_streamed(
    connections: OpenConnections, stream: Nudges, client_id: str, conversation_id: str, deduplication_id: str
) -> None:
    """After a response is in the log: nudge the stream if the conversation has an open connection (the module's
    docstring says why one opening meanwhile loses nothing), or if the look failed: a nudge too many costs a
    stream invocation, where a failed look would hold up the conversation's recording."""
    try:
        watched = connections.any_open(client_id, conversation_id)
    except Exception:  # whatever the look's failure: the nudge decides nothing of the log
        logger.warning("could not look for stream connections: nudging", exc_info=True)
        watched = True
    if watched:
        stream.send(client_id, conversation_id, deduplication_id)
