"""openapi.yaml: valid OpenAPI 3.1, generated from the models as committed, and describing every route."""

from __future__ import annotations

import subprocess
import sys

import yaml
from openapi_spec_validator import validate

from devstack.template import ROOT, load, resources_of_type

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

    assert {(method, path) for path, operations in paths.items() for method in operations} == routes
