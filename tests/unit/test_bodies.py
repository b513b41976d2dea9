"""A request body read as JSON: size, text, syntax and depth are refused with 400 or 413 before any model sees
it (moved from the integration tests of POST /messages; one of each refusal still goes through the handler)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness import message
from relay.edge.api import answer
from relay.edge.bodies import parse_json
from relay.errors import RelayError
from relay.settings import InboundSettings

MAX_BODY_BYTES = InboundSettings.model_fields["max_body_bytes"].default


def refusal(body: str) -> tuple[int, str]:
    """The status and message POST /messages answers the body with."""
    with pytest.raises(RelayError) as refused:
        parse_json(body, MAX_BODY_BYTES)
    response = answer(refused.value)
    return response.status_code, json.loads(str(response.body))["message"]


def sized_message(total_bytes: int) -> str:
    """A valid message whose JSON body is exactly `total_bytes` long."""
    body = message(message_id="big", text="x")
    body["text"] = "x" * (total_bytes - len(json.dumps(body)) + 1)
    raw = json.dumps(body)
    assert len(raw.encode()) == total_bytes
    return raw


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        pytest.param('{"userId": "alice", ', "JSON", id="truncated"),
        pytest.param("{'userId': 'alice'}", "JSON", id="single-quotes"),
        pytest.param("not json at all", "JSON", id="text"),
        pytest.param("", "empty", id="empty"),
        pytest.param("   \n", "empty", id="whitespace"),
    ],
)
def test_a_body_that_is_not_json_is_refused_with_400(raw: str, said: str) -> None:
    status, said_back = refusal(raw)

    assert status == 400
    assert said in said_back


def test_a_body_over_the_limit_is_refused_with_413_naming_the_limit() -> None:
    status, said = refusal(sized_message(MAX_BODY_BYTES + 1))

    assert status == 413
    assert str(MAX_BODY_BYTES) in said


def test_a_body_of_exactly_the_limit_is_taken() -> None:
    assert len(parse_json(sized_message(MAX_BODY_BYTES), MAX_BODY_BYTES)["text"]) > 250_000


def test_the_size_limit_counts_bytes_not_characters() -> None:
    """Multi-byte text under the limit in characters but over it in UTF-8 bytes is refused."""
    body = json.dumps(message(text="é" * (MAX_BODY_BYTES // 2 + 10)), ensure_ascii=False)
    assert len(body) < MAX_BODY_BYTES < len(body.encode())

    assert refusal(body)[0] == 413


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(message(payload=nested(256))),
        '{"payload":' * 10_000 + "1" + "}" * 10_000,
        "[" * 100_000 + "]" * 100_000,
        json.dumps(message(payload={"text": "\ud800"})),
        json.dumps(message(payload={"\udfff": "x"})),
    ],
    ids=["payload-256-deep", "body-10000-deep", "array-100000-deep", "lone-surrogate", "surrogate-key"],
)
def test_a_hostile_body_is_refused_with_400(raw: str) -> None:
    status, said = refusal(raw)

    assert status == 400
    assert said


def test_a_payload_nested_within_the_limit_is_taken() -> None:
    assert parse_json(json.dumps(message(payload=nested(30))), MAX_BODY_BYTES)["payload"] == nested(30)
