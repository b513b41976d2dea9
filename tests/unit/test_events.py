"""events/: what `sam local invoke <Function> -e events/<file> --env-vars events/env.json` is given.

Each event must reach its function's route or queue as the template declares it, carry a body the
function accepts, and env.json must set exactly the variables SAM lets it override.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from devstack.lambdas import path_parameters
from devstack.template import ROOT, Resolver, load, parameter_values, resources_of_type
from relay.adapters.publisher import is_install_probe, message_group_id
from relay.flows.polling import ResponsesQuery
from relay.models import BotResponse, ClientResponse, InboundMessage, StreamNudge, scoped
from relay.settings import (
    BotResponseSettings,
    DeliverySettings,
    InboundSettings,
    ResponsesLogSettings,
    StreamSettings,
    StreamSocketSettings,
)
from relay.stores.clients import bearer_token

EVENTS = ROOT / "events"
HTTP_EVENTS = {
    "inbound.json": "InboundFunction",
    "bot_response.json": "BotResponseFunction",
    "bot_probe.json": "BotResponseFunction",
    "get_responses.json": "InboundFunction",
}
POST_EVENTS = [name for name in HTTP_EVENTS if name != "get_responses.json"]
SQS_EVENTS = {
    "delivery.json": "DeliveryFunction",
    "responses_log.json": "ResponsesLogFunction",
}
SETTINGS: dict[
    str,
    type[
        InboundSettings
        | BotResponseSettings
        | DeliverySettings
        | ResponsesLogSettings
        | StreamSettings
        | StreamSocketSettings
    ],
] = {
    "InboundFunction": InboundSettings,
    "BotResponseFunction": BotResponseSettings,
    "DeliveryFunction": DeliverySettings,
    "ResponsesLogFunction": ResponsesLogSettings,
    "StreamSocketFunction": StreamSocketSettings,
    "StreamFunction": StreamSettings,
}
TEMPLATE = load()
DEFAULTS = Resolver(TEMPLATE, parameter_values(TEMPLATE, {"BotWebhookUrl": "https://bot.example/webhook"}), {})
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")


def event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def body(name: str) -> Any:
    return json.loads(event(name)["body"])


def delivery_record(name: str = "delivery.json") -> dict[str, Any]:
    (record,) = event(name)["Records"]
    return record


def declared_environment(function: str) -> dict[str, Any]:
    """What the template sets for the function: Globals first, the function's own on top."""
    return {
        **TEMPLATE["Globals"]["Function"]["Environment"]["Variables"],
        **FUNCTIONS[function]["Properties"]["Environment"]["Variables"],
    }


@pytest.mark.parametrize("name", sorted(path.name for path in EVENTS.glob("*.json")))
def test_every_event_file_is_a_json_object(name: str) -> None:
    assert isinstance(event(name), dict)


def test_there_is_a_sample_for_every_function_and_an_env_file() -> None:
    present = {path.name for path in EVENTS.glob("*.json")}
    assert {*HTTP_EVENTS, *SQS_EVENTS, "stream.json", "stream_connect.json", "env.json"} <= present


# ── the stream ──


def test_stream_connect_event_opens_a_connection_of_the_websocket_api_with_a_token() -> None:
    sample = event("stream_connect.json")
    routes = {
        spec["Properties"]["RouteKey"]
        for spec in resources_of_type(TEMPLATE, "AWS::ApiGatewayV2::Route").values()
        if spec["Properties"]["Target"] == {"Fn::Sub": "integrations/${StreamIntegration}"}
    }
    stage = TEMPLATE["Resources"]["StreamStage"]["Properties"]["StageName"]

    assert sample["requestContext"]["routeKey"] == "$connect" in routes
    assert sample["requestContext"]["eventType"] == "CONNECT" and sample["requestContext"]["stage"] == stage
    assert set(sample["queryStringParameters"]) == {"token"}
    assert "body" not in sample


def test_stream_event_is_a_nudge_from_the_stream_queue_in_its_conversations_group() -> None:
    record = SQSRecord(delivery_record("stream.json"))
    nudge = StreamNudge.model_validate_json(record.body)
    queue = TEMPLATE["Resources"]["StreamQueue"]["Properties"]

    assert record.event_source_arn.endswith(queue["QueueName"]["Fn::Sub"].removeprefix("${AWS::StackName}"))
    assert record.attributes.message_group_id == message_group_id(nudge.client_id, nudge.conversation_id)
    assert record.md5_of_body == hashlib.md5(record.body.encode()).hexdigest()  # noqa: S324 - SQS's checksum


# ── HTTP API events ──


@pytest.mark.parametrize(("name", "function"), HTTP_EVENTS.items())
def test_http_event_hits_a_route_of_its_function(name: str, function: str) -> None:
    sample = event(name)
    routes = [
        (spec["Properties"]["Method"].upper(), spec["Properties"]["Path"])
        for spec in FUNCTIONS[function]["Properties"]["Events"].values()
        if spec["Type"] == "HttpApi"
    ]
    context = sample["requestContext"]

    assert sample["version"] == "2.0"
    assert sample["routeKey"] == context["routeKey"]
    assert sample["routeKey"] in {f"{method} {path}" for method, path in routes}
    method, route = sample["routeKey"].split(" ", 1)
    assert context["http"]["method"] == method
    assert context["http"]["path"] == sample["rawPath"]
    assert path_parameters(route, sample["rawPath"]) == (sample.get("pathParameters") or {})
    # What the handler's resolver routes on.
    parsed = APIGatewayProxyEventV2(sample)
    assert (parsed.http_method, parsed.path) == (method, sample["rawPath"])


@pytest.mark.parametrize("name", POST_EVENTS)
def test_http_event_is_a_json_request_api_gateway_could_send(name: str) -> None:
    sample = event(name)
    headers = sample["headers"]

    assert all(header == header.lower() for header in headers)  # HTTP APIs lower-case header names
    assert headers["content-type"] == "application/json"
    assert sample["isBase64Encoded"] is False
    assert int(headers["content-length"]) == len(sample["body"].encode())


def test_get_responses_event_is_a_poll_with_valid_parameters_and_no_body() -> None:
    sample = event("get_responses.json")

    assert bearer_token(sample["headers"])
    assert "body" not in sample and "content-type" not in sample["headers"]
    assert sample["queryStringParameters"] == dict(parse_qsl(sample["rawQueryString"]))
    ResponsesQuery.model_validate(sample["queryStringParameters"])
    assert sample["pathParameters"]["conversationId"] == body("inbound.json")["conversationId"]


def test_inbound_event_carries_a_bearer_token_and_a_valid_message() -> None:
    assert bearer_token(event("inbound.json")["headers"])
    InboundMessage.model_validate(body("inbound.json"))


def test_bot_response_event_is_a_bot_message_not_the_probe() -> None:
    response = BotResponse.model_validate(body("bot_response.json"))

    assert response.type == "text"
    assert not is_install_probe(body("bot_response.json"))


def test_bot_probe_event_is_the_install_probe() -> None:
    assert body("bot_probe.json") == {"type": "test", "payload": "test"}
    assert is_install_probe(body("bot_probe.json"))


def test_bot_events_put_the_same_secret_in_the_path_and_path_parameters() -> None:
    for name in ("bot_response.json", "bot_probe.json"):
        sample = event(name)
        assert sample["rawPath"].endswith("/" + sample["pathParameters"]["secret"])


# ── SQS event ──


@pytest.mark.parametrize(("name", "function"), SQS_EVENTS.items())
def test_sqs_event_comes_from_the_functions_fifo_queue(name: str, function: str) -> None:
    record = delivery_record(name)
    (source,) = [
        spec["Properties"]["Queue"]
        for spec in FUNCTIONS[function]["Properties"]["Events"].values()
        if spec["Type"] == "SQS"
    ]
    queue = TEMPLATE["Resources"][source["Fn::GetAtt"][0]]["Properties"]
    name_suffix = queue["QueueName"]["Fn::Sub"].removeprefix("${AWS::StackName}")

    assert record["eventSource"] == "aws:sqs"
    assert queue["FifoQueue"] is True
    assert record["eventSourceARN"].startswith("arn:aws:sqs:")
    assert record["eventSourceARN"].rpartition(":")[2].endswith(name_suffix)


@pytest.mark.parametrize("name", SQS_EVENTS)
def test_sqs_event_has_the_fifo_attributes_the_functions_read(name: str) -> None:
    record = SQSRecord(delivery_record(name))

    assert int(record.attributes.approximate_receive_count) >= 1
    assert int(record.attributes.sequence_number or "") > 0
    assert record.attributes.message_group_id
    assert record.attributes.message_deduplication_id
    assert record.md5_of_body == hashlib.md5(record.body.encode()).hexdigest()  # noqa: S324 - SQS's checksum


@pytest.mark.parametrize("name", SQS_EVENTS)
def test_sqs_body_is_a_client_response_as_the_relay_serializes_it(name: str) -> None:
    raw = delivery_record(name)["body"]

    response = ClientResponse.model_validate_json(raw)

    assert response.to_json() == raw  # what is signed and delivered is this exact text


def test_delivery_message_attributes_match_its_body_for_filter_policies() -> None:
    record = delivery_record()
    response = ClientResponse.model_validate_json(record["body"])
    attributes = {name: value["stringValue"] for name, value in record["messageAttributes"].items()}

    assert {value["dataType"] for value in record["messageAttributes"].values()} == {"String"}
    assert attributes == {
        "clientId": response.client_id,
        "conversationId": response.conversation_id,
        "userId": response.user_id,
        "type": response.type,
    }


def test_samples_follow_one_conversation_from_client_to_bot_and_back() -> None:
    """Invoked in order with a client of the delivery sample's id, bot_response finds inbound's conversation."""
    sent = InboundMessage.model_validate(body("inbound.json"))
    answer = BotResponse.model_validate(body("bot_response.json"))
    delivered = ClientResponse.model_validate_json(delivery_record()["body"])

    assert answer.conversation_id == scoped(delivered.client_id, sent.conversation_id)
    assert (delivered.conversation_id, delivered.user_id) == (sent.conversation_id, sent.user_id)
    assert delivered.botpress_message_id == answer.botpress_message_id
    assert delivered.payload == answer.payload


# ── env.json ──


def test_env_file_covers_exactly_the_templates_functions() -> None:
    assert set(event("env.json")) == set(FUNCTIONS)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_env_file_sets_exactly_the_variables_the_template_declares(function: str) -> None:
    values = event("env.json")[function]

    assert set(values) == set(declared_environment(function))
    assert all(isinstance(value, str) for value in values.values())


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_env_file_keeps_the_templates_defaults_and_marks_what_to_replace(function: str) -> None:
    values = event("env.json")[function]
    parameters = TEMPLATE["Parameters"]

    for name, declared in declared_environment(function).items():
        if isinstance(declared, str):
            assert values[name] == declared, name
        elif parameters.get(declared.get("Ref"), {}).get("Default") is not None:
            assert values[name] == str(parameters[declared["Ref"]]["Default"]), name
        elif "Fn::If" in declared:  # a choice between fixed values: the one the parameters' defaults make
            assert values[name] == DEFAULTS(declared), name
        else:  # a resource of the stack, or a parameter without a default: the user's own value
            assert "REPLACE" in values[name], name


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_env_file_values_pass_the_functions_settings(function: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in event("env.json")[function].items():
        monkeypatch.setenv(name, value)

    SETTINGS[function].from_environment()  # the function would fail at init otherwise
