"""The sample events in events/ work against the real handlers, as `sam local invoke -e events/…` would use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from devstack.lambdas import json_body
from harness import Relay

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str, **replacements: str) -> dict[str, Any]:
    text = (EVENTS / name).read_text()
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def test_sample_events_take_a_message_round(relay: Relay, receiver: HTTPServer) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("")
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    secret = {"REPLACE-WITH-BOT-RESPONSE-SECRET": relay.bot_secret}

    inbound = relay.inbound.invoke(sample("inbound.json", **{"REPLACE-WITH-CLIENT-TOKEN": token}))
    probe = relay.bot_response.invoke(sample("bot_probe.json", **secret))
    published = relay.bot_response.invoke(sample("bot_response.json", **secret))
    relay.drain()

    assert inbound["statusCode"] == 200 and json_body(inbound)["status"] == "forwarded"
    assert probe["statusCode"] == 200 and published["statusCode"] == 200
    ((request, _),) = receiver.log
    delivered = Webhook(client.webhook_secret).verify(request.get_data(), dict(request.headers))
    assert delivered["conversationId"] == json.loads(sample("inbound.json")["body"])["conversationId"]


def test_sample_delivery_event_is_delivered(relay: Relay, receiver: HTTPServer) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("")
    relay.add_client("acme", response_url=receiver.url_for("/hook"))

    result = relay.delivery.invoke(sample("delivery.json"))

    assert result == {"batchItemFailures": []}
    ((request, _),) = receiver.log
    assert request.get_data(as_text=True) == sample("delivery.json")["Records"][0]["body"]


def test_sample_responses_log_event_is_recorded_once(relay: Relay) -> None:
    record = sample("responses_log.json")

    first = relay.responses_log.invoke(record)
    again = relay.responses_log.invoke(record)  # a redelivery

    assert first == again == {"batchItemFailures": []}
    response = json.loads(record["Records"][0]["body"])
    assert relay.logged(response["clientId"], response["conversationId"]) == [response["payload"]["text"]]


def test_sample_poll_reads_what_the_sample_round_recorded(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    relay.inbound.invoke(sample("inbound.json", **{"REPLACE-WITH-CLIENT-TOKEN": token}))
    relay.bot_response.invoke(sample("bot_response.json", **{"REPLACE-WITH-BOT-RESPONSE-SECRET": relay.bot_secret}))
    relay.record()

    polled = relay.inbound.invoke(sample("get_responses.json", **{"REPLACE-WITH-CLIENT-TOKEN": token}))

    assert polled["statusCode"] == 200, polled
    (response,) = json_body(polled)["responses"]
    assert response["payload"] == json.loads(sample("bot_response.json")["body"])["payload"]


def test_sample_stream_events_connect_and_send_the_logged_response(relay: Relay) -> None:
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    from devstack.provision import ACCOUNT, REGION

    _, client = relay.add_client("acme")
    token = relay.mint_token(client, "order-42", {"userId": "alice"}).json()["token"]
    placeholder = "REPLACE-WITH-THE-token-OF-POST-conversations-order-42-tokens"
    connect = sample("stream_connect.json", **{placeholder: token})
    connection_id = connect["requestContext"]["connectionId"]

    assert relay.stream_socket.invoke(connect) == {"statusCode": 200}
    relay.responses_log.invoke(sample("responses_log.json"))
    assert relay.stream.invoke(sample("stream.json")) == {"batchItemFailures": []}

    posted = apigatewaymanagementapi_backends[ACCOUNT][REGION].connections
    sent = json.loads(posted[quote(connection_id, safe="")].data)  # moto keeps the id as the URL carries it
    assert sent["response"] == json.loads(sample("responses_log.json")["Records"][0]["body"])
