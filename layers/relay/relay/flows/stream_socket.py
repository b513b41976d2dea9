"""The WebSocket API's routes. $connect (the conversation token checked by relay.edge.stream_api): set the cursor
(`after`, or the log's end) · record the connection · nudge its conversation. $disconnect: forget the connection.
$default: answer a ping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit

from relay.conversation_tokens import ConversationGrant
from relay.errors import Forbidden, InvalidRequest, RelayError, Unauthorized
from relay.flows.stream import Connections, Log, Nudges
from relay.observability import logger, metrics
from relay.stores.connections import Connection
from relay.watermarks import InvalidWatermark, Watermarks

CONNECT_REFUSALS: tuple[type[RelayError], ...] = (Unauthorized, Forbidden, InvalidRequest)
"""What $connect refuses a connection with (no upgrade)."""

PONG = json.dumps({"event": "pong"})


class StreamSocket:
    def __init__(
        self,
        connections: Connections,
        log: Log,
        watermarks: Watermarks,
        nudges: Nudges,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connections = connections
        self._log = log
        self._watermarks = watermarks
        self._nudges = nudges
        self._clock = clock

    def connect(self, connection_id: str, grant: ConversationGrant, after: str | None = None) -> Connection:
        """Accept the connection (or raise what refuses it): from `after` (a watermark), or from now without one."""
        client_id, conversation_id = grant.client_id, grant.conversation_id
        logger.append_keys(client_id=client_id, conversation_id=conversation_id, connection_id=connection_id)
        if after:
            try:
                cursor = self._watermarks.read(after, client_id, conversation_id)
            except InvalidWatermark as error:
                raise InvalidRequest(f"query parameter after: {error}", field="after") from None
        else:
            cursor = self._log.last_position(client_id, conversation_id)
        connection = Connection(client_id, conversation_id, connection_id, cursor, self._clock())
        self._connections.open(connection)
        # After the record: the nudge's catch-up finds the connection, whatever the log got meanwhile, and a
        # response recorded from now on sees the connection and nudges too (relay.flows.recording).
        self._nudges.send(client_id, conversation_id, f"connect-{connection_id}")
        metrics.add_metric(name="StreamConnected", unit=MetricUnit.Count, value=1)
        logger.info("stream connected", extra={"catching_up": bool(after)})
        return connection

    def disconnect(self, connection_id: str) -> None:
        known = self._connections.close(connection_id)
        logger.info("stream disconnected", extra={"connection_id": connection_id, "known": known})

    def message(self, body: str | None) -> str:
        """The answer to a frame from the browser: a pong to `{"action": "ping"}`, else what is wrong."""
        try:
            action = json.loads(body or "").get("action")
        except (ValueError, AttributeError):
            action = None
        if action == "ping":
            return PONG
        return json.dumps({"event": "error", "message": 'the stream takes only {"action": "ping"}'})
