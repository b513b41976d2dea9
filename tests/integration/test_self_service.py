"""Client self-service on moto, through the client API's handler: GET /client from the client record, the attempt
log and the stops' index; every call checked against the function's IAM policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from devstack.esm import EventSourceMapping
from devstack.lambdas import LocalFunction
from harness import MAX_ATTEMPTS, Relay, scripted

# Retried at once, a stop held 1 s; the breaker kept out of the way (it has tests of its own).
QUICK = {
    "CACHE_TTL_SECONDS": "0.5",
    "DELIVERY_STOP_HOLD_SECONDS": "1",
    "DELIVERY_RETRY_SCHEDULE": "0",
    "ENDPOINT_FAILURE_THRESHOLD": "1000",
}


@pytest.fixture
def relay(relay: Relay) -> Relay:
    relay.delivery = LocalFunction(relay.delivery.spec, QUICK)
    relay.mapping = EventSourceMapping(relay.sqs, relay.delivery)
    return relay


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def client(relay: Relay, token: str) -> dict[str, Any]:
    answer = relay.call("GET", "/client", token)
    assert answer.status == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_a_failing_endpoint_is_shown_failing_then_healthy_once_it_delivers(relay: Relay, receiver: HTTPServer) -> None:
    url = scripted(receiver, {"a": [(500, "busy"), (503, "still busy")]})
    _, token = relay.add_client("acme", response_url=url)
    assert client(relay, token)["endpoint"]["state"] == "healthy"
    relay.say(token, "c-1", "a")

    relay.mapping.poll()
    relay.mapping.poll()
    failing = client(relay, token)
    relay.drain()
    healthy = client(relay, token)

    assert failing["endpoint"]["state"] == "failing"
    assert failing["endpoint"]["reason"] == "receiver answered HTTP 503"
    first = relay.call("GET", "/deliveries", token, status="failed").json()["attempts"][-1]
    assert when(failing["endpoint"]["since"]) == when(first["at"]) < when(failing["lastFailure"]["at"])
    assert failing["lastFailure"]["body"] == "still busy" and failing["lastSuccess"] is None
    assert healthy["endpoint"] == {"state": "healthy", "since": None, "reason": None, "openUntil": None}
    assert healthy["last24Hours"] == {"delivered": 1, "failed": 2}
    assert healthy["lastSuccess"]["attempt"] == 3
    assert {healthy["clientId"], healthy["name"], healthy["responseUrl"]} == {"acme", "acme back end", url}
    assert not {"webhookSecret", "tokenHash", "signingSecret"} & set(healthy)


def test_a_stopped_conversation_is_listed_with_the_response_it_stopped_at(relay: Relay, receiver: HTTPServer) -> None:
    url = scripted(receiver, {"x": [(500, "")] * MAX_ATTEMPTS})
    _, token = relay.add_client("acme", response_url=url)
    (stuck,) = relay.say(token, "order-42", "x")
    relay.say(token, "fine", "y")

    relay.drain()

    (stopped,) = client(relay, token)["stoppedConversations"]
    assert (stopped["conversationId"], stopped["webhookId"]) == ("order-42", stuck)
    assert stopped["since"] is not None


def test_a_url_switched_off_by_a_410_is_off(relay: Relay, receiver: HTTPServer) -> None:
    url = scripted(receiver, {"gone": [(410, "")]})
    _, token = relay.add_client("acme", response_url=url)
    relay.say(token, "c-1", "gone")

    relay.drain()

    endpoint = client(relay, token)["endpoint"]
    assert endpoint["state"] == "off" and endpoint["reason"] == "the receiver answered 410 Gone"


@pytest.mark.parametrize(("method", "path"), [("GET", "/client")])
def test_a_conversation_token_is_refused(relay: Relay, method: str, path: str) -> None:
    _, token = relay.add_client("acme")
    grant = relay.mint_token(token, "c-1", {"userId": "alice"}).json()["token"]

    answer = relay.call(method, path, grant)

    assert answer.status == 403 and "client token" in answer.json()["message"]
