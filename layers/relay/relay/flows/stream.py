"""The stream: a nudged conversation's open connections each get, from the responses log, what they have not had.

Why this keeps order without a gap: the log's positions are the watermarks, so frames come from the log, never
from the message that caused the nudge. A connection's cursor is where it was sent up to (its `after`, or the
log's end when it connected). Nudges come after the log's record exists (the responses log sends one after each
write that finds the conversation with a connection: relay.flows.recording says why a write that finds none
needs none) and after the connection's record exists ($connect sends one), and one FIFO message group per
conversation hands them to this flow one at a time: each nudge sends every connection everything after its
cursor, then moves the cursor. Whatever order records, connects and nudges come in, the last nudge after each of
them sends what it made sendable, once, in the log's order.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from relay.adapters.connections_api import FRAME_MAX_BYTES, ConnectionGone
from relay.models import ClientResponse, StreamNudge
from relay.observability import logger, metrics
from relay.stores.connections import Connection
from relay.stores.responses_log import PAGE_MAX_RESPONSES, Recorded
from relay.watermarks import Watermarks

CONNECTING_SECONDS = 30.0
"""API Gateway answers 410 to a post until the connection's $connect has returned (its integration times out
after 29 s): a connection younger than this that answers 410 is still connecting, an older one is gone."""

CONNECTING_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4)
"""Waits between posts to a connection still connecting; after them it is left for another nudge."""

QUERY_MAX_BYTES = 1024 * 1024
ITEM_MAX_BYTES = 400 * 1024
"""DynamoDB ends a query at 1 MB of items of at most 400 KB: a page that may have stopped there is followed by
another query."""


class Log(Protocol):
    """What the stream reads of the responses log (relay.stores.responses_log.ResponsesLog)."""

    def after(self, client_id: str, conversation_id: str, position: int, limit: int) -> list[Recorded]: ...

    def last_position(self, client_id: str, conversation_id: str) -> int: ...


class Connections(Protocol):
    """The connections table (relay.stores.connections.ConnectionStore)."""

    def open(self, connection: Connection) -> None: ...

    def of_conversation(self, client_id: str, conversation_id: str) -> list[Connection]: ...

    def advance(self, connection: Connection, cursor: int) -> Connection: ...

    def remove(self, connection: Connection) -> None: ...

    def close(self, connection_id: str) -> bool: ...


class Posts(Protocol):
    """The @connections API (relay.adapters.connections_api.ConnectionsApi): ConnectionGone for a 410."""

    def post(self, connection_id: str, frame: bytes) -> None: ...


class Nudges(Protocol):
    """The stream queue (relay.adapters.nudges.StreamNudges)."""

    def send(self, client_id: str, conversation_id: str, deduplication_id: str) -> None: ...


@dataclass
class Sent:
    """What one nudge did: frames posted, connections found gone, connections still connecting."""

    frames: int = 0
    gone: int = 0
    connecting: int = 0


class Stream:
    def __init__(
        self,
        log: Log,
        connections: Connections,
        posts: Posts,
        watermarks: Watermarks,
        nudges: Nudges,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._log = log
        self._connections = connections
        self._posts = posts
        self._watermarks = watermarks
        self._nudges = nudges
        self._clock = clock
        self._sleep = sleep

    def batch_handler(self) -> Callable[[SQSRecord], None]:
        """The record handler of one batch of the stream queue: a conversation is caught up on its first nudge in
        the batch; its later ones were sent before that catch-up read the log, so they have nothing to add."""
        handled: set[tuple[str, str]] = set()

        def handle(record: SQSRecord) -> None:
            nudge = StreamNudge.model_validate_json(record.body)
            if (conversation := (nudge.client_id, nudge.conversation_id)) not in handled:
                self.nudged(*conversation)
                handled.add(conversation)

        return handle

    def nudged(self, client_id: str, conversation_id: str) -> Sent:
        """Each open connection of the conversation gets every response after its cursor, in the log's order.

        A connection still connecting keeps its cursor, and the conversation is nudged again, so its catch-up
        does not wait for the bot's next response.
        """
        sent = Sent()
        for connection in self._connections.of_conversation(client_id, conversation_id):
            self._catch_up(connection, sent)
        if sent.connecting:
            self._nudges.send(client_id, conversation_id, f"again-{uuid.uuid4()}")
        for name, value in (("StreamFrames", sent.frames), ("StreamGone", sent.gone)):
            if value:
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        logger.info("stream nudged", extra={"frames": sent.frames, "gone": sent.gone, "connecting": sent.connecting})
        return sent

    def _catch_up(self, connection: Connection, sent: Sent) -> None:
        cursor = connection.cursor
        try:
            while page := self._log.after(connection.client_id, connection.conversation_id, cursor, PAGE_MAX_RESPONSES):
                for entry in page:
                    if not self._post(connection, self._frame(connection, entry, cursor)):
                        self._lost(connection, sent)
                        return
                    cursor = entry.position
                    sent.frames += 1
                read = sum(len(entry.body.encode()) for entry in page)
                if len(page) < PAGE_MAX_RESPONSES and read < QUERY_MAX_BYTES - ITEM_MAX_BYTES:
                    return  # the query was not cut short: nothing more
        finally:
            if cursor != connection.cursor:
                self._connections.advance(connection, cursor)

    def _post(self, connection: Connection, frame: bytes) -> bool:
        """Post the frame; False when the connection answers Gone (after a few tries while it is connecting)."""
        delays = iter(CONNECTING_RETRY_DELAYS)
        while True:
            try:
                self._posts.post(connection.connection_id, frame)
                return True
            except ConnectionGone:
                delay = next(delays, None)
                if delay is None or not self._connecting(connection):
                    return False
                self._sleep(delay)

    def _lost(self, connection: Connection, sent: Sent) -> None:
        if self._connecting(connection):
            sent.connecting += 1
            return
        sent.gone += 1
        self._connections.remove(connection)
        logger.info("stream connection gone", extra={"connection_id": connection.connection_id})

    def _connecting(self, connection: Connection) -> bool:
        return self._clock() - connection.connected_at < CONNECTING_SECONDS

    def _frame(self, connection: Connection, entry: Recorded, before: int) -> bytes:
        """The response's frame: its body exactly as logged (and delivered to webhooks), its id and watermark."""
        client_id, conversation_id = connection.client_id, connection.conversation_id
        webhook_id = ClientResponse.model_validate_json(entry.body).webhook_id
        watermark = self._watermarks.issue(client_id, conversation_id, entry.position)
        head = f'{{"event":"response","id":{json.dumps(webhook_id)},"watermark":{json.dumps(watermark)}'
        frame = f'{head},"response":{entry.body}}}'.encode()
        if len(frame) <= FRAME_MAX_BYTES:
            return frame
        # Too large for one post: the browser reads it with GET …/responses?after=<after>&limit=1.
        after = self._watermarks.issue(client_id, conversation_id, before)
        too_large = {"event": "too-large", "id": webhook_id, "watermark": watermark, "after": after}
        return json.dumps(too_large, separators=(",", ":")).encode()
