"""Client self-service on moto, through the client API's handler: GET /client from the client record, the attempt
log and the stops' index; every call checked against the function's IAM policy."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from devstack.esm import EventSourceMapping
from devstack.lambdas import LocalFunction
from harness import MAX_ATTEMPTS, Receiver, Relay, scripted
from relay.endpoints import EndpointState
from relay.observability import logger
from relay.stores.delivery_state import DeliveryState
from relay_clients import cli

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


SELF_SERVICE_ROUTES = [
    ("GET", "/client", None),
    ("POST", "/client/test", None),
    ("PUT", "/client/response-url", {"responseUrl": "https://evil.example/hook"}),
    ("POST", "/client/signing-secret", {}),
    ("POST", "/client/recover", {"since": "2026-01-01T00:00:00Z"}),
    ("GET", "/deliveries", None),
]


def test_a_conversation_token_is_refused_on_every_self_service_route(relay: Relay) -> None:
    client_, token = relay.add_client("acme", response_url="https://acme.example/hook")
    grant = relay.mint_token(token, "c-1", {"userId": "alice"}).json()["token"]

    answers = [relay.call(method, path, grant, body) for method, path, body in SELF_SERVICE_ROUTES]

    assert [a.status for a in answers] == [403] * len(SELF_SERVICE_ROUTES)
    assert all("client token" in a.json()["message"] for a in answers)
    assert relay.clients.get("acme") == client_, "nothing changed"


# ── POST /client/test ──


def test_a_test_delivery_to_a_teapot_reports_its_418_and_is_in_the_attempt_log(
    relay: Relay, receiver: HTTPServer
) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("I'm a teapot", status=418)
    client_, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))

    answer = relay.call("POST", "/client/test", token)

    assert answer.status == 200, answer.text
    tested = answer.json()
    assert (tested["status"], tested["failure"], tested["body"], tested["trigger"]) == (
        418,
        "http",
        "I'm a teapot",
        "test",
    )
    ((request, _),) = receiver.log
    delivered = Webhook(client_.webhook_secret).verify(request.get_data(), dict(request.headers))
    assert delivered["type"] == "test" and request.headers["webhook-id"] == tested["webhookId"]
    assert relay.call("GET", "/deliveries", token).json()["attempts"] == [tested]


def test_a_test_without_a_response_url_is_a_409_saying_how_to_set_one(relay: Relay) -> None:
    _, token = relay.add_client("acme")

    answer = relay.call("POST", "/client/test", token)

    assert answer.status == 409 and "PUT /client/response-url" in answer.json()["message"]


# ── PUT /client/response-url ──


def test_a_new_url_after_a_410_switches_the_endpoint_on_and_deliveries_go_there(
    relay: Relay, receiver: HTTPServer
) -> None:
    gone = scripted(receiver, {"first": [(410, "")]}, path="/old")
    new = scripted(receiver, {}, path="/new")
    _, token = relay.add_client("acme", response_url=gone)
    relay.say(token, "c-1", "first")
    relay.drain()
    assert client(relay, token)["endpoint"]["state"] == "off"

    answer = relay.call("PUT", "/client/response-url", token, {"responseUrl": new})
    time.sleep(0.5)  # the delivery function's cached client record (QUICK's cache time)
    relay.say(token, "c-1", "second")
    relay.drain()

    assert answer.status == 200, answer.text
    assert answer.json()["responseUrl"] == new and answer.json()["endpoint"]["state"] == "healthy"
    assert [request.path for request, _ in receiver.log] == ["/old", "/new"]


def test_switching_a_parked_endpoint_on_delivers_its_parked_conversation_in_order(
    relay: Relay, receiver: HTTPServer
) -> None:
    acme, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    hook = Receiver(receiver, {"acme": acme.webhook_secret})
    ids = relay.say(token, "c-1", "a", "b", "c")
    relay.record()
    # Parked as the delivery function parks (tests/unit/test_delivery_flow.py): the responses left the queue,
    # the log holds them, the conversation's park record names the first and the latest.
    relay.sqs.purge_queue(QueueUrl=relay.stack.ref("DeliveryQueue"))
    now = datetime.now(UTC)
    relay.clients.open_endpoint("acme", now, now, "receiver answered HTTP 500")
    assert relay.clients.park_endpoint("acme", EndpointState.PARKED, now, "failing for 15 minutes")
    state = DeliveryState(relay.session.client("dynamodb"), relay.stack.ref("DeliveryStateTable"))
    for webhook_id in ids:
        assert state.park("acme", "c-1", webhook_id, relay.clients.parked_counted("acme"))
    assert client(relay, token)["endpoint"]["state"] == "parked"

    answer = relay.call("PUT", "/client/response-url", token, {"responseUrl": hook.url})
    relay.drain()

    assert answer.status == 200 and answer.json()["endpoint"]["state"] == "healthy"
    assert hook.delivered("c-1") == ["a", "b", "c"]


def test_a_bad_url_is_refused_naming_the_field(relay: Relay) -> None:
    _, token = relay.add_client("acme", response_url="https://acme.example/hook")
    bad = [({"responseUrl": "ftp://acme.example/hook"}, "responseUrl"), ({}, "responseUrl"), ({"url": None}, "url")]

    answers = [relay.call("PUT", "/client/response-url", token, body) for body, _ in bad]

    for answer, (_, field) in zip(answers, bad, strict=True):
        assert answer.status == 422 and field in {error["field"] for error in answer.json()["errors"]}
    assert relay.clients.get("acme").response_url is not None  # type: ignore[union-attr]


# ── POST /client/signing-secret ──


def test_a_new_secret_signs_deliveries_beside_the_previous_one_during_its_grace(
    relay: Relay, receiver: HTTPServer
) -> None:
    old, token = relay.add_client("acme", response_url=scripted(receiver, {}))

    answer = relay.call("POST", "/client/signing-secret", token, {"graceSeconds": 600})
    time.sleep(0.5)  # the delivery function's cached client record (QUICK's cache time)
    relay.say(token, "c-1", "signed twice")
    relay.drain()

    assert answer.status == 200, answer.text
    new = answer.json()
    assert set(new) == {"signingSecret", "previousValidUntil"} and new["signingSecret"].startswith("whsec_")
    ((request, _),) = receiver.log
    for secret in (old.webhook_secret, new["signingSecret"]):
        Webhook(secret).verify(request.get_data(), dict(request.headers))


def test_without_a_body_the_grace_is_rotates_and_a_bad_one_is_refused(relay: Relay) -> None:
    _, token = relay.add_client("acme")

    default = relay.call("POST", "/client/signing-secret", token)
    refused = relay.call("POST", "/client/signing-secret", token, {"graceSeconds": -1})

    until = datetime.fromisoformat(default.json()["previousValidUntil"])
    assert default.status == 200 and 23.9 < (until - datetime.now(UTC)).total_seconds() / 3600 <= 24
    assert refused.status == 422 and refused.json()["errors"][0]["field"] == "graceSeconds"


# ── operational events ──


def test_operators_subscribed_to_the_operations_topic_are_told_of_a_stopped_conversation(
    relay: Relay, receiver: HTTPServer
) -> None:
    inbox = relay.sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
    arn = relay.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    relay.session.client("sns").subscribe(
        TopicArn=relay.stack.ref("OperationsTopic"),
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps({"type": ["conversation.stopped"]})},
    )
    url = scripted(receiver, {"x": [(500, "")] * MAX_ATTEMPTS})
    _, token = relay.add_client("acme", response_url=url)
    (stuck,) = relay.say(token, "order-42", "x")

    relay.drain()

    (message,) = relay.sqs.receive_message(QueueUrl=inbox, MessageAttributeNames=["All"])["Messages"]
    event = json.loads(message["Body"])
    assert {name: value["StringValue"] for name, value in message["MessageAttributes"].items()} == {
        "clientId": "acme",
        "type": "conversation.stopped",
    }
    assert (event["type"], event["clientId"], event["conversationId"], event["webhookId"]) == (
        "conversation.stopped",
        "acme",
        "order-42",
        stuck,
    )
    assert event["host"] == "127.0.0.1" and event["reason"] == "receiver answered HTTP 500" and "at" in event


# ── POST /client/recover ──


def test_recover_after_a_purge_delivers_the_stopped_conversation_again_in_order_with_the_same_ids(
    relay: Relay, receiver: HTTPServer
) -> None:
    acme, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    hook = Receiver(receiver, {"acme": acme.webhook_secret}).fail("c-1", MAX_ATTEMPTS)
    since = datetime.now(UTC).isoformat()
    ids = relay.say(token, "c-1", "x", "y", "z")
    relay.drain()
    relay.record()
    relay.sqs.purge_queue(QueueUrl=relay.stack.ref("DeliveryDeadLetterQueue"))  # what a redrive would have brought
    assert hook.delivered("c-1") == [] and client(relay, token)["stoppedConversations"] != []

    answer = relay.call("POST", "/client/recover", token, {"since": since})
    relay.drain()

    assert answer.status == 202, answer.text
    assert answer.json() == {"responses": 3, "conversations": 1}
    assert hook.delivered("c-1") == ["x", "y", "z"]
    assert [a.webhook_id for a in hook.attempts if a.status == 204] == ids, "the same webhook-ids"
    recovered = relay.call("GET", "/deliveries", token, status="delivered").json()["attempts"]
    assert {(a["trigger"], a["attempt"]) for a in recovered} == {("recover", 1)}
    assert client(relay, token)["stoppedConversations"] == [], "the conversation goes on"
    assert relay.queue_depth(relay.stack.ref("ResponsesLogQueue")) == 0, "nothing published again"


def test_recover_of_a_window_with_nothing_undelivered_queues_nothing(relay: Relay, receiver: HTTPServer) -> None:
    _, token = relay.add_client("acme", response_url=scripted(receiver, {}))
    relay.say(token, "c-1", "fine")
    relay.drain()

    answer = relay.call("POST", "/client/recover", token, {"since": "2026-01-01T00:00:00Z"})

    assert (answer.status, answer.json()) == (202, {"responses": 0, "conversations": 0})


def test_a_bad_recover_window_is_refused_naming_the_field(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    bad = [{}, {"since": "yesterday"}, {"since": "2026-01-01T00:00:00"}, {"since": 1700000000}]

    answers = [relay.call("POST", "/client/recover", token, body) for body in bad]

    assert [(a.status, a.json()["errors"][0]["field"]) for a in answers] == [(422, "since")] * len(bad)


# ── relay-clients health, attempts, test, recover: the same answers, for an operator ──


type Operator = Callable[..., tuple[int, str, str]]


@pytest.fixture
def operator(relay: Relay, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Operator:
    """relay-clients run against the relay's tables: its status, stdout and stderr."""
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    where = [
        "--table",
        relay.stack.ref("ClientsTable"),
        "--attempts-table",
        relay.stack.ref("AttemptsTable"),
        "--delivery-state-table",
        relay.stack.ref("DeliveryStateTable"),
    ]

    def run(command: str, client_id: str, *rest: str) -> tuple[int, str, str]:
        capfd.readouterr()
        # As in a process of its own, where the log's handler starts on stdout (the test's, which capfd reads while
        # the test runs); put back after the test, when that stdout is closed.
        monkeypatch.setattr(handler, "stream", sys.stdout)
        status = cli.main([command, client_id, *where, *rest])
        out, err = capfd.readouterr()
        return status, out, err

    return run


def test_an_operator_sees_what_the_client_sees(relay: Relay, receiver: HTTPServer, operator: Operator) -> None:
    url = scripted(receiver, {"a": [(503, "busy")]})
    _, token = relay.add_client("acme", response_url=url)
    relay.say(token, "c-1", "a")
    relay.drain()

    health = operator("health", "acme")
    failed = operator("attempts", "acme", "--status", "failed")
    paged = operator("attempts", "acme", "--limit", "1")

    assert health[0] == 0 and json.loads(health[1]) == client(relay, token)
    assert failed[0] == 0 and json.loads(failed[1]) == relay.call("GET", "/deliveries", token, status="failed").json()
    assert json.loads(paged[1]) == relay.call("GET", "/deliveries", token, limit=1).json()


def test_an_operator_tests_a_clients_url_and_recovers_its_window(
    relay: Relay, receiver: HTTPServer, operator: Operator
) -> None:
    receiver.expect_request("/teapot", method="POST").respond_with_data("I'm a teapot", status=418)
    _, token = relay.add_client("acme", response_url=receiver.url_for("/teapot"))

    status, out, _ = operator("test", "acme")
    recovered = operator(
        "recover",
        "acme",
        "--since",
        "2026-01-01T00:00:00Z",
        "--responses-table",
        relay.stack.ref("ResponsesTable"),
        "--queue",
        relay.stack.ref("DeliveryQueue"),
    )

    assert status == 1, "not delivered"
    tested = json.loads(out)
    assert (tested["status"], tested["body"], tested["trigger"]) == (418, "I'm a teapot", "test")
    assert relay.call("GET", "/deliveries", token).json()["attempts"] == [tested]
    assert recovered[0] == 0 and json.loads(recovered[1]) == {"responses": 0, "conversations": 0}


def test_an_operators_mistake_is_named(relay: Relay, operator: Operator) -> None:
    relay.add_client("acme")
    mistakes = [
        (("attempts", "acme", "--since", "yesterday"), "--since"),
        (("attempts", "acme", "--limit", "0"), "--limit"),
        (("recover", "acme", "--since", "2026-01-01T00:00:00"), "--since"),
        (("health", "nobody"), "no client 'nobody'"),
    ]

    for argv, named in mistakes:
        status, _, err = operator(*argv)
        assert status in (1, 2) and named in err, (argv, err)
