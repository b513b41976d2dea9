"""README.md: its tables and figures that come from template.yaml are what the template says now."""

from __future__ import annotations

import re
from typing import Any

import pytest

from devstack.template import load
from relay.settings import InboundSettings
from tools.readme import README, costs_region, render, stack_built_names, stack_name_limit

STACK = "${AWS::StackName}"


def test_the_readme_tables_are_what_the_template_generates() -> None:
    committed = README.read_text()

    assert render(committed, load()) == committed, "README.md is stale: run `make docs` and commit it"


def test_a_stack_name_of_the_stated_limit_fits_every_name_built_from_it_and_one_more_does_not() -> None:
    template = load()
    limit = stack_name_limit(template)
    stated = re.search(r"A stack name has at most \*\*(\d+)\*\* characters", README.read_text())

    assert stated is not None and int(stated[1]) == limit
    for name in stack_built_names(template):
        assert len(name.pattern.replace(STACK, "s" * limit)) <= name.limit, name.resource
    assert any(len(name.pattern.replace(STACK, "s" * (limit + 1))) > name.limit for name in stack_built_names(template))


def _with_resource(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    template = load()
    template["Resources"][name] = spec
    return template


def test_a_name_built_from_the_stack_name_without_a_known_limit_is_refused_by_name() -> None:
    template = _with_resource(
        "Archive", {"Type": "AWS::Kinesis::Stream", "Properties": {"Name": {"Fn::Sub": f"{STACK}-archive"}}}
    )

    with pytest.raises(ValueError, match=r"Archive\.Name: no length limit known for AWS::Kinesis::Stream"):
        stack_name_limit(template)


def test_a_longer_name_built_from_the_stack_name_lowers_the_limit() -> None:
    suffix = "-" + "x" * 40 + ".fifo"
    template = _with_resource(
        "LongQueue", {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": STACK + suffix}}}
    )

    assert stack_name_limit(template) == 80 - len(suffix)


def test_a_function_without_a_cost_assumption_is_named() -> None:
    template = _with_resource(
        "ArchiveFunction", {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "app.lambda_handler"}}
    )

    with pytest.raises(ValueError, match="no cost assumption for ArchiveFunction"):
        costs_region(template)


def test_a_parameter_without_a_description_is_named() -> None:
    template = load()
    template["Parameters"]["BrowserOrigins"] = {"Type": "String", "Default": ""}

    with pytest.raises(ValueError, match="parameter BrowserOrigins has no Description"):
        render(README.read_text(), template)


def _dollars(cell: str) -> float:
    return float(re.sub(r"[^\d.]", "", cell))


def test_the_cost_total_is_the_sum_of_its_rows() -> None:
    rows = [line.split(" | ") for line in costs_region(load()).splitlines() if line.startswith("| ")]
    costs = {row[0].lstrip("| "): row[-1].rstrip(" |") for row in rows[2:]}
    total = _dollars(costs.pop("**total**"))
    summed = [cost for component, cost in costs.items() if cost.startswith("$")]

    assert len(summed) >= 8
    assert abs(sum(_dollars(cost) for cost in summed) - total) <= 0.01 * len(summed)


def test_the_rotation_note_gives_the_client_cache_time() -> None:
    rotation = README.read_text().split("### Rotation without downtime", 1)[1].split("\n## ", 1)[0]
    cache = InboundSettings.model_fields["cache_ttl_seconds"].default

    assert f"up to {cache:g} seconds" in rotation
