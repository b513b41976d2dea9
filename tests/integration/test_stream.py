"""The stream on moto: $connect through the WebSocket handler, nudges through the stream queue, frames posted to
moto's @connections API. moto accepts a post to any connection id; API Gateway answers 410 Gone to one that is
not open, so that one answer is stubbed for the connections a test has not opened."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend, apigatewaymanagementapi_backends
from moto.core.exceptions import JsonRESTError

from devstack.provision import ACCOUNT, REGION
from harness import Relay, message
from iam_policy import CallRecorder


class Gone(JsonRESTError):
    code = 410

    def __init__(self) -> None:
        super().__init__("GoneException", "the connection is not open")


class Connections:
    """moto's @connections, answering 410 for a connection not open (API Gateway's answer)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open: set[str] = set()
        post = ApiGatewayManagementApiBackend.post_to_connection

        def post_if_open(backend: ApiGatewayManagementApiBackend, data: bytes, connection_id: str) -> None:
            if connection_id not in self.open:
                raise Gone()
            post(backend, data, connection_id)

        monkeypatch.setattr(ApiGatewayManagementApiBackend, "post_to_connection", post_if_open)

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        """The frames posted to the connection, in order (moto keeps them as one byte string)."""
        data = apigatewaymanagementapi_backends[ACCOUNT][REGION].connections[connection_id].data.decode()
        decoder, frames, at = json.JSONDecoder(), [], 0
        while at < len(data):
            frame, at = decoder.raw_decode(data, at)
            frames.append(frame)
        return frames

    def texts(self, connection_id: str) -> list[str]:
        return [frame["response"]["payload"]["text"] for frame in self.frames(connection_id)]


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Connections:
    return Connections(monkeypatch)


@pytest.fixture
def browser(relay: Relay) -> Iterator[dict[str, Any]]:
    """A conversation token for acme's order-42 and alice, as the back end mints it."""
    _, client = relay.add_client("acme")
    answer = relay.mint_token(client, "order-42", {"userId": "alice"}).json()
    yield {"client": client, **answer}


def connect(relay: Relay, connections: Connections, connection_id: str, **query: str) -> dict[str, Any]:
    """$connect, then the connection open to posts, as API Gateway opens it once $connect answered 200."""
    answer: dict[str, Any] = relay.socket("$connect", connection_id, query)
    if answer["statusCode"] == 200:
        connections.open.add(connection_id)
    return answer


def open_connections(relay: Relay) -> list[str]:
    """The connections the connections table holds."""
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=relay.stack.ref("ConnectionsTable"))["Items"]
    return sorted(item["connectionId"]["S"] for item in items)


def talk(relay: Relay, token: str, text: str, replies: int = 1) -> None:
    """The browser sends; the bot replies; the log records and nudges the stream."""
    before = len(relay.forwarded())
    assert relay.post_message(token, message("order-42", userId="alice", text=text)).status == 200
    relay.reply(relay.forwarded()[before], count=replies)
    relay.record()


def test_a_connection_gets_each_response_of_its_conversation_as_a_frame(
    relay: Relay, connections: Connections, browser: dict[str, Any]
) -> None:
    assert connect(relay, connections, "conn-1", token=browser["token"])["statusCode"] == 200
    talk(relay, browser["token"], "hi", replies=2)
    relay.send_stream()

    frames = connections.frames("conn-1")
    assert [f["response"]["payload"]["text"] for f in frames] == ["reply 1 to hi", "reply 2 to hi"]
    assert all(f["event"] == "response" and f["id"].startswith("msg_") for f in frames)
    logged = relay.log.after("acme", "order-42", 0, 10)
    assert [f["response"] for f in frames] == [entry.response() for entry in logged]
    # A frame's watermark works as `after` for GET …/responses.
    page = relay.get_responses(browser["token"], "order-42", after=frames[0]["watermark"]).json()
    assert [r["payload"]["text"] for r in page["responses"]] == ["reply 2 to hi"]


def test_a_connection_with_after_catches_up_then_goes_on_live(
    relay: Relay, connections: Connections, browser: dict[str, Any]
) -> None:
    talk(relay, browser["token"], "one", replies=2)
    relay.send_stream()
    first = relay.get_responses(browser["token"], "order-42", limit=1).json()["watermark"]

    connect(relay, connections, "tab-1", token=browser["token"], after=first)
    connect(relay, connections, "tab-2", token=browser["token"])
    relay.send_stream()
    talk(relay, browser["token"], "two")
    relay.send_stream()

    assert connections.texts("tab-1") == ["reply 2 to one", "reply 1 to two"]
    assert connections.texts("tab-2") == ["reply 1 to two"]


def test_a_gone_connection_is_removed_and_the_others_go_on(
    relay: Relay, connections: Connections, browser: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for connection in ("a", "b", "c"):
        connect(relay, connections, connection, token=browser["token"])
    relay.send_stream()
    connections.open.discard("b")  # closed, and its $disconnect lost
    monkeypatch.setattr("relay.flows.stream.CONNECTING_SECONDS", 0.0)  # long connected by now

    talk(relay, browser["token"], "hi")
    relay.send_stream()

    assert connections.texts("a") == connections.texts("c") == ["reply 1 to hi"]
    assert open_connections(relay) == ["a", "c"]


def test_a_connection_still_connecting_gets_its_frames_once_it_is_open(
    relay: Relay, connections: Connections, browser: dict[str, Any], iam_checked: CallRecorder
) -> None:
    relay.socket("$connect", "late", {"token": browser["token"]})  # API Gateway not open to posts yet
    talk(relay, browser["token"], "hi")

    while relay.stream_mapping.poll():  # 410s, retried briefly: the conversation is nudged again
        if any(c.function == "StreamFunction" and c.action == "sqs:SendMessage" for c in iam_checked.calls):
            break
    assert open_connections(relay) == ["late"]
    connections.open.add("late")
    relay.send_stream()

    assert connections.texts("late") == ["reply 1 to hi"]


def test_disconnect_forgets_the_connection(relay: Relay, connections: Connections, browser: dict[str, Any]) -> None:
    connect(relay, connections, "conn-1", token=browser["token"])

    assert relay.socket("$disconnect", "conn-1")["statusCode"] == 200

    assert open_connections(relay) == []


def test_a_ping_is_answered_on_the_two_way_route(relay: Relay) -> None:
    answer = relay.socket("$default", "conn-1", body='{"action": "ping"}')

    assert answer == {"statusCode": 200, "body": '{"event": "pong"}'}


def test_connect_refuses_without_upgrade(relay: Relay, connections: Connections, browser: dict[str, Any]) -> None:
    refused = [
        ({}, 401),
        ({"token": "ct_forged.AAAA"}, 401),
        ({"token": "acme.client-token"}, 403),
        ({"token": browser["token"], "after": "not-a-watermark"}, 400),
    ]

    for query, status in refused:  # each in turn, in one relay
        answer = connect(relay, connections, "conn-1", **query)

        assert answer["statusCode"] == status, query
        assert json.loads(answer["body"])["message"], query
        assert open_connections(relay) == [], query


def test_the_stream_calls_are_each_allowed_by_their_functions_policy(
    relay: Relay, connections: Connections, browser: dict[str, Any], iam_checked: CallRecorder
) -> None:
    """The autouse IAM check fails any test whose calls a policy refuses; this one makes every kind of call."""
    connect(relay, connections, "conn-1", token=browser["token"])
    talk(relay, browser["token"], "hi")
    relay.send_stream()
    relay.socket("$disconnect", "conn-1")

    actions = {(call.function, call.action) for call in iam_checked.calls}
    assert {
        ("StreamSocketFunction", "dynamodb:PutItem"),
        ("StreamSocketFunction", "dynamodb:Query"),
        ("StreamSocketFunction", "dynamodb:DeleteItem"),
        ("StreamSocketFunction", "sqs:SendMessage"),
        ("ResponsesLogFunction", "sqs:SendMessage"),
        ("StreamFunction", "execute-api:ManageConnections"),
        ("StreamFunction", "dynamodb:UpdateItem"),
    } <= actions
