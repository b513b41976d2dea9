"""A message body's fields, as POST /messages checks them: every field that is missing or wrong is named in a
422 (moved from the integration tests of POST /messages; one of each refusal still goes through the handler)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from schemathesis.generation.jsonschema.strategy import compile_ecma_pattern

from harness import message
from relay.edge.api import invalid_body
from relay.models import Id, InboundMessage

REQUIRED = ["userId", "messageId", "conversationId", "type", "text"]


def refusal(body: Any) -> tuple[int, dict[str, Any]]:
    """The status and JSON body POST /messages answers the (parsed) body with."""
    with pytest.raises(ValidationError) as refused:
        InboundMessage.model_validate(body)
    response = invalid_body(refused.value)
    return response.status_code, json.loads(str(response.body))


def assert_named(body: Any, field: str) -> list[str]:
    """A 422 whose errors and message name `field`; the fields its errors name."""
    status, said = refusal(body)
    fields = [problem["field"] for problem in said["errors"]]
    assert status == 422
    assert field in fields, said
    assert field in said["message"], said
    return fields


@pytest.mark.parametrize("body", [[message()], "hello", 42, None], ids=["array", "string", "number", "null"])
def test_a_body_that_is_not_an_object_is_refused_with_422(body: Any) -> None:
    status, said = refusal(body)

    assert status == 422
    assert said["errors"] and said["message"]


@pytest.mark.parametrize("field", REQUIRED)
def test_each_missing_field_is_named(field: str) -> None:
    body = message()
    del body[field]

    assert assert_named(body, field) == [field]


def test_every_missing_field_is_named_at_once() -> None:
    status, said = refusal({})

    assert status == 422
    assert sorted(problem["field"] for problem in said["errors"]) == sorted(REQUIRED)


@pytest.mark.parametrize(
    "value", ["", "   ", "\t\n", "\u0085\u3000"], ids=["empty", "spaces", "tab-newline", "unicode"]
)
@pytest.mark.parametrize("field", ["userId", "messageId", "conversationId", "type"])
def test_blank_ids_are_refused(field: str, value: str) -> None:
    assert_named(message(**{field: value}), field)


def test_a_blank_id_is_refused_in_words_not_as_a_pattern() -> None:
    _, said = refusal(message(conversationId=" \u00a0 "))

    assert said["errors"] == [{"field": "conversationId", "message": "String should not be blank (white space only)"}]


def test_an_empty_text_is_refused() -> None:
    assert_named(message(text=""), "text")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("payload", "hello", id="payload-string"),
        pytest.param("payload", [1, 2], id="payload-array"),
        pytest.param("payload", 7, id="payload-number"),
        pytest.param("text", 5, id="text-number"),
        pytest.param("text", {"a": 1}, id="text-object"),
        pytest.param("userId", 12345, id="userId-number"),
        pytest.param("messageId", ["m-1"], id="messageId-array"),
        pytest.param("conversationId", True, id="conversationId-bool"),
        pytest.param("type", None, id="type-null"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(field: str, value: Any) -> None:
    assert assert_named(message(**{field: value}), field) == [field]


@pytest.mark.parametrize("text", [3, None, ["a"]], ids=["number", "null", "list"])
def test_a_payload_text_the_integration_refuses_is_named(text: object) -> None:
    assert assert_named(message(payload={"text": text, "kind": "note"}), "payload.text") == ["payload.text"]


@pytest.mark.parametrize(
    ("payload", "forwarded"),
    [
        ("absent", {"text": "hello"}),
        (None, {"text": "hello"}),
        ({"choice": "b"}, {"choice": "b", "text": "hello"}),
        ({"text": "kept", "url": "u"}, {"text": "kept", "url": "u"}),
    ],
    ids=["absent", "null", "without-text", "with-text"],
)
def test_the_payload_is_what_the_integration_would_send_the_bot(payload: Any, forwarded: dict[str, Any]) -> None:
    body = message(text="hello")
    if payload == "absent":
        del body["payload"]
    else:
        body["payload"] = payload

    assert InboundMessage.model_validate(body).model_dump(by_alias=True)["payload"] == forwarded


def test_an_id_is_blank_to_the_relay_exactly_when_it_is_to_openapi_yamls_readers() -> None:
    """The fuzz drew a U+0085 conversation id as valid (its reading of `\\s` is ASCII) and the relay refused it."""
    relay_reads = TypeAdapter(Id)
    schema_reads = compile_ecma_pattern(TypeAdapter(Id).json_schema()["pattern"])
    # Every white space character any reading knows is below U+3100, but U+FEFF.
    for character in [*map(chr, range(0x3100)), "\ufeff"]:
        try:
            relay_reads.validate_python(character)
        except ValidationError:
            accepted = False
        else:
            accepted = True
        assert accepted == bool(schema_reads.search(character)), f"U+{ord(character):04X}"
