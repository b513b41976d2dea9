"""The WebSocket API's routes (StreamApi): an event into the stream socket flow's typed inputs, and its answer.

$connect takes the conversation token (and `after`) in its query string, as a browser's WebSocket cannot send
headers; a refused one is answered with its status and no upgrade."""

from __future__ import annotations

from typing import Any

from relay.edge.access import Access
from relay.edge.api import socket_refusal
from relay.errors import Unauthorized
from relay.flows.stream_socket import CONNECT_REFUSALS, StreamSocket


def route(access: Access, socket: StreamSocket, event: dict[str, Any]) -> dict[str, Any]:
    """API Gateway's answer to the event; $default's body is sent back on the connection (a two-way route)."""
    request = event["requestContext"]
    connection_id = request["connectionId"]
    if request["routeKey"] == "$connect":
        parameters = event.get("queryStringParameters") or {}
        try:
            if not (token := parameters.get("token", "")):
                raise Unauthorized("missing token: open the streamUrl of a token answer as it is")
            socket.connect(connection_id, access.grant(token), parameters.get("after"))
        except CONNECT_REFUSALS as error:
            return socket_refusal(error)
    elif request["routeKey"] == "$disconnect":
        socket.disconnect(connection_id)
    else:
        return {"statusCode": 200, "body": socket.message(event.get("body"))}
    return {"statusCode": 200}
