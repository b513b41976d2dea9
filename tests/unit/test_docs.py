"""README.md and docs/: their tables and figures that come from template.yaml are what the template says now."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

import doc_examples
from devstack.template import load
from relay.settings import InboundSettings
from tools.docs import DOCS, README, costs_region, pages, render, render_pages, stack_built_names, stack_name_limit

STACK = "${AWS::StackName}"


def _texts() -> dict[Path, str]:
    return {path: path.read_text() for path in pages()}


def _all_text() -> str:
    return "\n".join(_texts().values())


def test_every_page_is_checked_the_readme_and_each_under_docs() -> None:
    assert pages()[0] == README
    assert {path.name for path in pages()[1:]} >= {"deploy.md", "operate.md", "clients.md", "run-locally.md"}
    assert all(path.parent == DOCS for path in pages()[1:])


def test_the_tables_in_every_page_are_what_the_template_generates() -> None:
    committed = _texts()

    rendered = render_pages(committed, load())

    stale = [str(path.relative_to(README.parent)) for path, text in committed.items() if rendered[path] != text]
    assert not stale, f"stale: {', '.join(stale)}: run `make docs` and commit them"


def test_a_page_that_drifts_is_named() -> None:
    texts = _texts()
    deploy = DOCS / "deploy.md"
    texts[deploy] = texts[deploy].replace("| `BotWebhookUrl` |", "| `BotWebhookURL` |", 1)

    rendered = render_pages(texts, load())

    assert [path for path, text in texts.items() if rendered[path] != text] == [deploy]


def test_a_region_missing_from_every_page_is_named() -> None:
    unmarked = re.compile(r"<!-- (/?)template: alarms -->")
    texts = {path: unmarked.sub(r"<!-- \1gone: alarms -->", text) for path, text in _texts().items()}

    with pytest.raises(ValueError, match="no page has a region for: alarms"):
        render_pages(texts, load())


def test_a_region_in_two_pages_is_named() -> None:
    texts = _texts()
    texts[README] += "<!-- template: costs -->\n<!-- /template: costs -->\n"

    with pytest.raises(ValueError, match=r"regions in more than one place: costs \(README.md, deploy.md\)"):
        render_pages(texts, load())


def test_a_stack_name_of_the_stated_limit_fits_every_name_built_from_it_and_one_more_does_not() -> None:
    template = load()
    limit = stack_name_limit(template)
    stated = re.search(r"A stack name has at most \*\*(\d+)\*\* characters", _all_text())

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
        render((DOCS / "deploy.md").read_text(), template)


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
    rotation = _all_text().split("## Rotation without downtime", 1)[1].split("\n## ", 1)[0]
    cache = InboundSettings.model_fields["cache_ttl_seconds"].default

    assert f"up to {cache:g} seconds" in rotation


def _anchors(page: str) -> set[str]:
    """GitHub's anchors for a page's headings: lowercased, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", page, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_link_between_the_pages_reaches_a_file_and_heading_that_exist() -> None:
    broken = []
    for path, text in _texts().items():
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S)):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            missing_anchor = anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text())
            if not linked.exists() or missing_anchor:
                broken.append(f"{path.name}: {target}")

    assert not broken


def test_every_stack_name_the_docs_give_is_the_one_samconfig_deploys() -> None:
    deployed = tomllib.loads((README.parent / "samconfig.toml").read_text())["default"]["global"]["parameters"]
    cli = (README.parent / "operators" / "relay_clients" / "cli.py").read_text()

    named = re.findall(r"--stack(?:-name)?[ =]([a-z][\w-]*)", _all_text() + cli)  # not <stack name> or NAME

    assert len(named) >= 10
    assert set(named) == {deployed["stack_name"]}


def test_the_status_table_of_post_messages_gives_every_status_openapi_yaml_lists() -> None:
    described = yaml.safe_load((README.parent / "openapi.yaml").read_text())["paths"]["/messages"]["post"]["responses"]
    page = (DOCS / "clients.md").read_text().split("## Send a message", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[0] for line in page.splitlines() if line.startswith("| `")]

    assert {status for row in rows for status in re.findall(r"`(\d{3})`", row)} == set(described)


# ── the marked examples (tests/doc_examples.py; tests/e2e/test_make_dev.py runs them against make dev) ──


def test_each_kind_of_example_is_marked_where_the_docs_show_it_so_none_goes_unchecked() -> None:
    marked = {(example.page.name, example.kind) for example in doc_examples.examples()}

    assert {
        ("README.md", "banner"),
        ("README.md", "answer"),
        ("README.md", "log"),
        ("run-locally.md", "banner"),
        ("run-locally.md", "log"),
        ("clients.md", "console"),
        ("browsers.md", "console"),
        ("browsers.md", "file"),
        ("browsers.md", "part"),
    } <= marked


def test_the_files_the_docs_show_are_the_repositorys() -> None:
    for example in doc_examples.examples("file"):
        assert example.path
        assert example.body == (doc_examples.ROOT / example.path).read_text(), example
    for example in doc_examples.examples("part"):
        assert example.path
        whole = (doc_examples.ROOT / example.path).read_text()
        for paragraph in example.body.split("\n\n"):
            assert paragraph.strip() in whole, f"{example}: not in {example.path}: {paragraph}"


def test_a_shown_line_is_like_an_output_line_only_where_they_differ_in_what_the_ellipsis_stands_for() -> None:
    timed = doc_examples.like("10:02:11 api          POST /messages → 200 (38 ms)")
    token = doc_examples.like("  client token         demo.…   (client 'demo')")

    assert timed("06:13:08 api POST /messages → 200 (118 ms)")
    assert not timed("06:13:08 api POST /messages → 401 (3 ms)")
    assert token("  client token  demo.Gt6-iTXeUO5k8O9Q   (client 'demo')")
    assert not token("  client token  acme.Gt6-iTXeUO5k8O9Q   (client 'acme')")


def test_a_console_example_runs_its_commands_in_one_shell_and_names_a_line_it_did_not_print() -> None:
    script = "$ GREETING=hello\n$ echo $GREETING \\\n    world\nhello world\n$ echo done\nnot this\n"
    example = doc_examples.Example(README, 1, "console", None, script)

    assert [step.command for step in doc_examples.steps(example)] == [
        "GREETING=hello",
        "echo $GREETING \\\n    world",
        "echo done",
    ]
    problems = doc_examples.run_console(example, {"PATH": os.environ["PATH"]})
    assert len(problems) == 1
    assert "`echo done` printed no line like 'not this'" in problems[0]
