"""The stream in the local stack: a WebSocket server standing in for the WebSocket API, and its @connections API.

Each socket event goes to the function the template integrates with that route, as an API Gateway WebSocket
event: $connect with the handshake's query (a status other than 200 refuses the upgrade with that status),
$default with each frame from the browser (the function's answer is sent back, as a two-way route does),
$disconnect when the socket closes. The @connections API is what the stream function posts frames to: POST
delivers a frame to that socket, GET describes the connection and DELETE closes it, and each answers 410 Gone
for a connection that is not open, as API Gateway does, also while its $connect has not yet returned.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from devstack.console import say
from devstack.lambdas import Invocable, websocket_event
from devstack.servers import LocalRequestHandler, LocalServer

STAGE = "live"
"""The WebSocket API's stage, as in the template: @connections URLs are under it."""
FRAME_MAX_BYTES = 128 * 1024
"""API Gateway's WebSocket message limit, both ways."""
_INTERNAL_ERROR = "Internal server error"


@dataclass
class _Socket:
    """An accepted connection: frames posted before its handshake completes wait here, then go out in order."""

    connection_id: str
    connected_at: float
    source_ip: str
    user_agent: str
    socket: ServerConnection | None = None
    pending: list[bytes] = field(default_factory=list)
    last_active_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class StreamServer:
    """The WebSocket server on 127.0.0.1 (port 0: a free one), bound at once and routed later."""

    def __init__(self, port: int = 0) -> None:
        self._server = serve(
            self._handle,
            "127.0.0.1",
            port,
            process_request=self._connect,
            ping_interval=None,  # API Gateway sends no pings of its own: the browser pings with a frame
            max_size=FRAME_MAX_BYTES,
            compression=None,  # API Gateway does not negotiate permessage-deflate
        )
        self._routes: dict[str, Invocable] = {}
        self._sockets: dict[str, _Socket] = {}
        self._lock = threading.Lock()
        self.connections = ConnectionsApi(self)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"

    def route_to(self, routes: dict[str, Invocable]) -> None:
        """Serve `routes` (route key → function; $default takes what no other key does)."""
        self._routes = routes

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.shutdown()

    def server_close(self) -> None:
        self._server.socket.close()

    # ── @connections ──

    def post(self, connection_id: str, frame: bytes) -> bool:
        """Send `frame` to the connection (or queue it until its handshake completes); False when not open."""
        sock = self._sockets.get(connection_id)
        if sock is None:
            return False
        with sock.lock:
            if sock.socket is None:
                sock.pending.append(frame)
                return True
            try:
                sock.socket.send(frame, text=True)
            except ConnectionClosed:
                return False
            sock.last_active_at = time.time()
        return True

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        sock = self._sockets.get(connection_id)
        if sock is None:
            return None
        return {
            "connectedAt": _iso(sock.connected_at),
            "lastActiveAt": _iso(sock.last_active_at or sock.connected_at),
            "identity": {"sourceIp": sock.source_ip, "userAgent": sock.user_agent},
        }

    def close(self, connection_id: str) -> bool:
        """Close the connection from the server's side, as DeleteConnection does; False when not open."""
        sock = self._sockets.get(connection_id)
        if sock is None:
            return False
        with sock.lock:
            if sock.socket is None:  # still in its handshake: closed once that completes
                sock.pending.append(b"")
            else:
                sock.socket.close(1000, "closed through @connections")
        return True

    # ── the socket's life ──

    def _connect(self, connection: ServerConnection, request: Request) -> Response | None:
        """$connect, before the upgrade: the function's 200 accepts it, any other status refuses it."""
        connection_id = _connection_id()
        connection.connection_id = connection_id  # type: ignore[attr-defined]  # read by _handle
        event = self._event("$connect", connection_id, request.headers, urlsplit(request.path).query)
        status, headers, body = self._invoke("$connect", event, connection_id)
        if status != 200:
            response = connection.respond(status, body)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection"):
                    del response.headers[name]  # Headers holds repeats: the function's value replaces the default
                    response.headers[name] = value
            return response
        ip, _ = connection.remote_address
        self._sockets[connection_id] = _Socket(connection_id, time.time(), ip, request.headers.get("user-agent", ""))
        return None

    def _handle(self, connection: ServerConnection) -> None:
        connection_id: str = connection.connection_id  # type: ignore[attr-defined]  # set by _connect
        sock = self._sockets[connection_id]
        with sock.lock:  # what was posted during the handshake, in order, before anything newer
            sock.socket = connection
            for frame in sock.pending:
                if frame:
                    connection.send(frame, text=True)
                else:
                    connection.close(1000, "closed through @connections")
            sock.pending.clear()
        try:
            for message in connection:
                sock.last_active_at = time.time()
                self._message(connection, connection_id, message)
        except ConnectionClosed:
            pass
        finally:
            headers = connection.request.headers if connection.request else None
            event = self._event("$disconnect", connection_id, headers)
            code = connection.close_code if connection.close_code is not None else 1006
            event["requestContext"].update(disconnectStatusCode=code, disconnectReason=connection.close_reason or "")
            del self._sockets[connection_id]  # posts answer 410 from now on
            self._invoke("$disconnect", event, connection_id)

    def _message(self, connection: ServerConnection, connection_id: str, message: str | bytes) -> None:
        text = message if isinstance(message, str) else base64.b64encode(message).decode()
        # The frame's `action` selects the route (RouteSelectionExpression $request.body.action); $default otherwise.
        try:
            action = json.loads(text).get("action") if isinstance(message, str) else None
        except (ValueError, AttributeError):
            action = None
        route = action if isinstance(action, str) and action in self._routes else "$default"
        event = self._event(route, connection_id, None, body=text)
        event["requestContext"]["messageId"] = secrets.token_urlsafe(12)
        event["isBase64Encoded"] = not isinstance(message, str)
        status, _, body = self._invoke(route, event, connection_id)
        if status >= 500:
            body = json.dumps(
                {
                    "message": _INTERNAL_ERROR,
                    "connectionId": connection_id,
                    "requestId": event["requestContext"]["requestId"],
                }
            )
        if body:
            sock = self._sockets.get(connection_id)
            if sock is not None:
                with sock.lock:
                    connection.send(body)

    def _invoke(self, route: str, event: dict[str, Any], connection_id: str) -> tuple[int, dict[str, str], str]:
        """The function's status, headers and body; a function error is API Gateway's 500."""
        function = self._routes.get(route)
        if function is None:
            return (200, {}, "") if route == "$disconnect" else (500, {}, json.dumps({"message": _INTERNAL_ERROR}))
        started = time.monotonic()
        try:
            result = function.invoke(event)
            if not isinstance(result, dict):  # a result that is not a proxy answer is the body
                result = {"statusCode": 200, "body": json.dumps(result)}
            status, body = int(result.get("statusCode", 200)), str(result.get("body") or "")
            headers = {name: str(value) for name, value in (result.get("headers") or {}).items()}
        except Exception as error:
            say("websocket", f"{route} {connection_id}: {error}")
            status, headers, body = 500, {}, json.dumps({"message": _INTERNAL_ERROR})
        # The connection id, never the query: the handshake's URL carries the token.
        say("websocket", f"{route} {connection_id} → {status} ({(time.monotonic() - started) * 1000:.0f} ms)")
        return status, headers, body

    def _event(
        self, route: str, connection_id: str, headers: Headers | None, query: str = "", body: str | None = None
    ) -> dict[str, Any]:
        """The route's API Gateway WebSocket event, with the handshake's headers and the connection's own times."""
        parameters = dict(parse_qsl(query, keep_blank_values=True))
        event = websocket_event(route, connection_id, parameters, body)
        sock = self._sockets.get(connection_id)
        if sock is not None:
            event["requestContext"].update(
                connectedAt=int(sock.connected_at * 1000), identity={"sourceIp": sock.source_ip}
            )
        if route == "$connect":
            event["multiValueQueryStringParameters"] = {
                name: [value for key, value in parse_qsl(query) if key == name] for name in parameters
            } or None
        if headers is not None:
            event["headers"] = dict(headers.raw_items())
            event["multiValueHeaders"] = {name: headers.get_all(name) for name in headers}
        return event


class ConnectionsApi(LocalServer):
    """The @connections API of the stream (POST, GET, DELETE /{stage}/@connections/{connectionId})."""

    def __init__(self, stream: StreamServer) -> None:
        super().__init__(0, _ConnectionsRequest)
        self.stream = stream

    @property
    def url(self) -> str:
        """What the stream function is given as STREAM_CONNECTIONS_URL: the stage's URL, as on AWS."""
        return f"http://127.0.0.1:{self.server_address[1]}/{STAGE}"


class _ConnectionsRequest(LocalRequestHandler):
    server: ConnectionsApi

    def do_POST(self) -> None:
        frame = self.rfile.read(int(self.headers.get("content-length") or 0))
        if (connection_id := self._connection_id()) is None:
            return
        if len(frame) > FRAME_MAX_BYTES:
            self._answer(413, {"message": "Message too long"}, "PayloadTooLargeException")
        elif self.server.stream.post(connection_id, frame):
            self._answer(200, None)
        else:
            self._gone()

    def do_GET(self) -> None:
        if (connection_id := self._connection_id()) is None:
            return
        described = self.server.stream.describe(connection_id)
        self._answer(200, described) if described is not None else self._gone()

    def do_DELETE(self) -> None:
        if (connection_id := self._connection_id()) is None:
            return
        self._answer(204, None) if self.server.stream.close(connection_id) else self._gone()

    def _connection_id(self) -> str | None:
        prefix, marker, connection_id = unquote(urlsplit(self.path).path).partition("/@connections/")
        if prefix != f"/{STAGE}" or not marker or not connection_id or "/" in connection_id:
            self._answer(404, {"message": "Not Found"}, "NotFoundException")
            return None
        return connection_id

    def _gone(self) -> None:
        self._answer(410, {"message": "Gone"}, "GoneException")

    def _answer(self, status: int, body: Any, error_type: str = "") -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if error_type:  # how botocore names the error: GoneException for a 410
            self.send_header("x-amzn-errortype", error_type)
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the stream function logs its posts."""


def _connection_id() -> str:
    """An id in API Gateway's form: 12 random bytes in base64 (with its `=`)."""
    return base64.b64encode(secrets.token_bytes(11)).decode().replace("/", "_").replace("+", "-")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
