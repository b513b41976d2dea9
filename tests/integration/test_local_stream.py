"""The local stack's stream: its WebSocket server routes socket events as API Gateway does, and its @connections API
answers the stream function's boto3 client as API Gateway's does (a frame to the right socket; 410 Gone once not open).

The socket function here is a stand-in that keeps what it is given: these tests are about the emulation, and the
stream's own functions are tested over it end to end (tests/e2e).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from devstack.provision import FunctionSpec
from devstack.stream import StreamServer

_SPEC = FunctionSpec("StreamSocketFunction", Path("functions/stream_socket"), "app.lambda_handler", 3, {}, [], None, 10)


class SocketFunction:
    """Accepts a $connect whose token is "good" (else 401), answers each frame with what it got, keeps the events."""

    spec = _SPEC

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.disconnected = threading.Event()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        route = event["requestContext"]["routeKey"]
        if route == "$connect":
            if (event["queryStringParameters"] or {}).get("token") != "good":
                return {"statusCode": 401, "headers": {"content-type": "application/json"}, "body": '{"message":"no"}'}
            return {"statusCode": 200}
        if route == "$disconnect":
            self.disconnected.set()
            return {"statusCode": 200}
        return {"statusCode": 200, "body": json.dumps({"got": event["body"]})}

    def connection_ids(self) -> list[str]:
        return [
            e["requestContext"]["connectionId"] for e in self.events if e["requestContext"]["routeKey"] == "$connect"
        ]


@pytest.fixture
def function() -> SocketFunction:
    return SocketFunction()


@pytest.fixture
def stream(function: SocketFunction) -> Iterator[StreamServer]:
    server = StreamServer()
    server.route_to({"$connect": function, "$disconnect": function, "$default": function})
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (server, server.connections)]
    for thread in threads:
        thread.start()
    yield server
    for part in (server.connections, server):
        part.shutdown()
        part.server_close()


def connections_api(stream: StreamServer) -> Any:
    """The stream function's client, as relay.adapters.connections_api makes it (no retries here)."""
    config = Config(retries={"max_attempts": 1})
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=stream.connections.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=config,
    )


def open_socket(stream: StreamServer, function: SocketFunction) -> tuple[ClientConnection, str]:
    socket = connect(f"{stream.url}?token=good")
    return socket, function.connection_ids()[-1]


def test_frames_posted_to_a_connection_reach_that_socket_only(stream: StreamServer, function: SocketFunction) -> None:
    api = connections_api(stream)
    first, first_id = open_socket(stream, function)
    second, second_id = open_socket(stream, function)
    with first, second:
        api.post_to_connection(ConnectionId=second_id, Data=b'{"n": 2}')
        api.post_to_connection(ConnectionId=first_id, Data=b'{"n": 1}')
        api.post_to_connection(ConnectionId=first_id, Data=b'{"n": 3}')

        assert [first.recv(timeout=5), first.recv(timeout=5)] == ['{"n": 1}', '{"n": 3}']  # text frames, in order
        assert second.recv(timeout=5) == '{"n": 2}'
        with pytest.raises(TimeoutError):
            second.recv(timeout=0.2)
    assert first_id != second_id


def test_a_closed_or_unknown_connection_is_gone_and_its_disconnect_is_routed(
    stream: StreamServer, function: SocketFunction
) -> None:
    api = connections_api(stream)
    socket, connection_id = open_socket(stream, function)
    with socket:
        assert api.get_connection(ConnectionId=connection_id)["Identity"]["SourceIp"] == "127.0.0.1"
    assert function.disconnected.wait(5)

    for gone in (connection_id, "never-opened="):
        with pytest.raises(api.exceptions.GoneException):
            api.post_to_connection(ConnectionId=gone, Data=b"{}")
        with pytest.raises(api.exceptions.GoneException):
            api.get_connection(ConnectionId=gone)
    disconnect = function.events[-1]
    assert disconnect["requestContext"]["eventType"] == "DISCONNECT"
    assert disconnect["requestContext"]["connectionId"] == connection_id


def test_deleting_a_connection_closes_its_socket(stream: StreamServer, function: SocketFunction) -> None:
    api = connections_api(stream)
    socket, connection_id = open_socket(stream, function)
    with socket:
        api.delete_connection(ConnectionId=connection_id)

        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=5)
    assert function.disconnected.wait(5)
    with pytest.raises(api.exceptions.GoneException):
        api.delete_connection(ConnectionId=connection_id)


def test_a_refused_connect_answers_the_handshake_with_its_status_and_no_upgrade(
    stream: StreamServer, function: SocketFunction
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stream.url}?token=bad")

    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body or b"") == {"message": "no"}
    assert refused.value.response.headers["content-type"] == "application/json"
    connect_event = function.events[0]
    assert connect_event["queryStringParameters"] == {"token": "bad"}
    assert connect_event["requestContext"]["eventType"] == "CONNECT"
    assert not function.disconnected.is_set(), "a connection never accepted is not disconnected"


def test_a_frame_from_the_browser_goes_to_default_and_its_answer_comes_back(
    stream: StreamServer, function: SocketFunction
) -> None:
    socket, connection_id = open_socket(stream, function)
    with socket:
        socket.send('{"action":"ping"}')

        assert json.loads(socket.recv(timeout=5)) == {"got": '{"action":"ping"}'}
    message = function.events[1]
    assert message["requestContext"]["routeKey"] == "$default"
    assert message["requestContext"]["connectionId"] == connection_id
