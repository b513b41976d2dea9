"""openapi.yaml: valid OpenAPI 3.1, generated from the models as committed, and describing every route."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated

import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import BaseModel, Field

from devstack.template import ROOT, load, resources_of_type
from relay.errors import InvalidRequest
from relay.models import ErrorBody
from tools.openapi import OPERATIONS, Operation, describe

COMMITTED = ROOT / "openapi.yaml"


def generated() -> str:
    return subprocess.run(
        [sys.executable, "tools/openapi.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def test_the_committed_description_is_what_the_models_generate() -> None:
    assert COMMITTED.read_text() == generated(), "openapi.yaml is stale: run `make openapi` and commit it"


def test_the_description_is_valid_openapi_3_1() -> None:
    document = yaml.safe_load(COMMITTED.read_text())

    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_route_of_the_template_is_described_and_no_other() -> None:
    routes = {
        (event["Properties"]["Method"].lower(), event["Properties"]["Path"])
        for function in resources_of_type(load(), "AWS::Serverless::Function").values()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    paths = yaml.safe_load(COMMITTED.read_text())["paths"]
    preflights = {path for method, path in routes if method == "options"}  # CORS, answered by the function

    assert {(method, path) for path, operations in paths.items() for method in operations} == {
        route for route in routes if route[0] != "options"
    }
    # Browsers get CORS on exactly the routes a conversation token may call.
    assert preflights == {op.path for op in OPERATIONS if op.conversation_token}


def test_a_query_model_becomes_described_query_parameters() -> None:
    class Page(BaseModel):
        after: str | None = None
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = 100

    operation = Operation(
        "get", "/things", "Things", "A page of things.", (InvalidRequest,), ErrorBody, {"message": "x"}, query=Page
    )

    document = describe([operation])

    validate(document)
    after, limit = document["paths"]["/things"]["get"]["parameters"]
    assert (after["name"], after["in"], after["required"]) == ("after", "query", False)
    assert limit["description"] == "At most this many."
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    assert "400" in document["paths"]["/things"]["get"]["responses"]


def test_a_generated_client_tells_a_wait_answer_from_a_receipt_by_the_variant_it_tries_first() -> None:
    """Generated clients (openapi-python-client) try `anyOf`'s variants in order, and a receipt takes extra
    fields: only a first variant that a plain receipt fails gets the replies parsed as typed responses."""
    document = describe()
    variants = document["paths"]["/messages"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    first, then = variants["anyOf"]
    receipt = {"messageId": "m-1", "conversationId": "c-1", "status": "forwarded"}
    response = {
        "type": "text",
        "payload": {"text": "hi"},
        "conversationId": "c-1",
        "botpressMessageId": "bp-1",
        "clientId": "acme",
        "userId": "alice",
    }
    replies = {**receipt, "responses": [response], "watermark": "w"}

    def valid(value: object, variant: dict[str, str]) -> bool:
        return Draft202012Validator({**variant, "components": document["components"]}).is_valid(value)

    assert (valid(receipt, first), valid(replies, first), valid(receipt, then)) == (False, True, True)
    assert not valid({**replies, "responses": [{"text": "not a response"}]}, first)
    assert document["webhooks"]["clientResponse"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ClientResponse"
    }
