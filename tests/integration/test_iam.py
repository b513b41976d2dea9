"""The IAM check catches what moto lets through: a call the function's policy in template.yaml does not allow."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer

from devstack import provision
from devstack.lambdas import LocalFunction
from devstack.template import load
from harness import Relay, message
from iam_policy import CallRecorder, Violation, decide, violations


def relay_with(
    monkeypatch: pytest.MonkeyPatch, aws: boto3.Session, bot: HTTPServer, edit: Callable[[Any], None]
) -> Relay:
    """The relay provisioned from template.yaml changed by `edit`; its first message passes (moto checks no IAM)."""
    template = load()
    edit(template)
    monkeypatch.setattr(provision, "load", lambda: template)
    bot.expect_request("/webhook", method="POST").respond_with_json({"message": {"id": "bp-msg"}})
    relay = Relay(aws, bot)
    _, token = relay.add_client()
    assert relay.post_message(token, message()).status == 200
    return relay


def inbound_statements(template: Any) -> list[dict[str, Any]]:
    return template["Resources"]["InboundFunction"]["Properties"]["Policies"][0]["Statement"]


def refused(problems: list[Violation]) -> set[tuple[str, str, str]]:
    return {(v.function, v.action, v.resource) for v in problems}


def test_a_statement_removed_from_the_policy_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
    aws: boto3.Session,
    bot: HTTPServer,
    iam_checked: CallRecorder,
    request: pytest.FixtureRequest,
) -> None:
    def remove_idempotency_statement(template: Any) -> None:
        statements = inbound_statements(template)
        statements.remove(next(s for s in statements if s["Resource"] == {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}))

    relay = relay_with(monkeypatch, aws, bot, remove_idempotency_statement)

    problems = violations(iam_checked.take())
    table = relay.stack.resolver.attributes["IdempotencyTable"]["Arn"]
    assert refused(problems) == {
        ("InboundFunction", "dynamodb:PutItem", table),
        ("InboundFunction", "dynamodb:UpdateItem", table),
    }
    assert {v.test for v in problems} == {request.node.nodeid}
    assert str(problems[0]).startswith(f"{request.node.nodeid}: InboundFunction calls dynamodb:PutItem on {table}")


def test_the_right_action_on_another_table_fails_the_check(
    monkeypatch: pytest.MonkeyPatch, aws: boto3.Session, bot: HTTPServer, iam_checked: CallRecorder
) -> None:
    def idempotency_records_in_another_table(template: Any) -> None:
        template["Resources"]["OtherTable"] = template["Resources"]["IdempotencyTable"]
        environment = template["Resources"]["InboundFunction"]["Properties"]["Environment"]["Variables"]
        environment["IDEMPOTENCY_TABLE"] = {"Ref": "OtherTable"}

    relay = relay_with(monkeypatch, aws, bot, idempotency_records_in_another_table)

    other = relay.stack.resolver.attributes["OtherTable"]["Arn"]
    assert refused(violations(iam_checked.take())) == {
        ("InboundFunction", "dynamodb:PutItem", other),
        ("InboundFunction", "dynamodb:UpdateItem", other),
    }


def test_calls_on_any_thread_count_for_the_function_whose_client_makes_them(
    relay: Relay, iam_checked: CallRecorder
) -> None:
    iam_checked.take()
    dynamodb = relay.delivery.module.dynamodb  # the delivery function's client, made at import
    table = relay.stack.ref("ClientsTable")
    worker = threading.Thread(target=dynamodb.get_item, kwargs={"TableName": table, "Key": {"clientId": {"S": "a"}}})
    worker.start()
    worker.join()

    (call,) = iam_checked.calls
    assert (call.function, call.action) == ("DeliveryFunction", "dynamodb:GetItem")
    assert call.resources == (relay.stack.resolver.attributes["ClientsTable"]["Arn"],)


def test_clients_made_during_an_invocation_count_for_the_function(
    relay: Relay, iam_checked: CallRecorder, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(
        "import boto3\n"
        "def handler(event, context):\n"
        "    boto3.client('dynamodb').get_item(TableName=event['table'], Key={'clientId': {'S': 'acme'}})\n"
        "    sqs = boto3.session.Session().client('sqs')\n"
        "    sqs.get_queue_attributes(QueueUrl=event['queue'], AttributeNames=['All'])\n"
    )
    probe = LocalFunction(dataclasses.replace(relay.delivery.spec, code_dir=tmp_path, handler="app.handler"))
    queue = relay.stack.ref("DeliveryQueue")
    iam_checked.take()

    probe.invoke({"table": relay.stack.ref("ClientsTable"), "queue": queue})
    relay.queue_depth(queue)  # the test's own call: no function's

    calls = iam_checked.calls
    assert [(c.function, c.action) for c in calls] == [
        ("DeliveryFunction", "dynamodb:GetItem"),
        ("DeliveryFunction", "sqs:GetQueueAttributes"),
    ]
    assert [decide(call, call.resources[0])[0] for call in calls] == [
        "Policies[0] statement 1",
        "AWSLambdaSQSQueueExecutionRole (added by SAM)",
    ]
