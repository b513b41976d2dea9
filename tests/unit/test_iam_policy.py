"""The IAM check evaluates actions, resources and conditions as IAM does, and refuses what it cannot read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.provision import ACCOUNT, REGION, FunctionSpec
from iam_policy import Policy, Statement, decide, describe, describe_all, role_policy, violations

TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/relay-dev-ClientsTable"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/relay-dev-delivery.fifo"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:relay-dev-delivery.fifo"
# Reading a client without its webhook secret, as attribute-level access allows.
ATTRIBUTES_ONLY = {
    "ForAllValues:StringEquals": {"dynamodb:Attributes": ["clientId", "tokenHash"]},
    "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
}


def refused(
    statements: list[dict[str, Any]], prefix: str, operation: str, params: dict[str, Any], **spec: Any
) -> list[str]:
    """Why `prefix:operation` with `params` is refused to a function with these statements ([] when allowed)."""
    function = FunctionSpec(
        **{
            "name": "ProbeFunction",
            "code_dir": Path(),
            "handler": "app.handler",
            "timeout_seconds": 3,
            "environment": {},
            "http_routes": [],
            "queue_url": None,
            "batch_size": 10,
            "policies": [{"Version": "2012-10-17", "Statement": statements}],
            **spec,
        }
    )
    return [str(v) for v in violations([describe(function.name, role_policy(function), prefix, operation, params)])]


def allow(action: Any, resource: Any, **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def test_a_call_is_allowed_only_on_the_resources_its_statement_names() -> None:
    get = {"TableName": "relay-dev-ClientsTable", "Key": {}}
    assert refused([allow("dynamodb:GetItem", TABLE)], "dynamodb", "GetItem", get) == []
    (problem,) = refused([allow("dynamodb:GetItem", TABLE + "2")], "dynamodb", "GetItem", get)
    assert f"ProbeFunction calls dynamodb:GetItem on {TABLE}" in problem
    assert refused([allow("dynamodb:PutItem", TABLE)], "dynamodb", "GetItem", get)


def test_wildcards_and_lists_match_as_in_iam() -> None:
    get = {"TableName": "relay-dev-ClientsTable", "Key": {}}
    assert (
        refused(
            [allow(["sqs:SendMessage", "DynamoDB:get*"], [QUEUE, "arn:aws:dynamodb:*:*:table/relay-*"])],
            "dynamodb",
            "GetItem",
            get,
        )
        == []
    )
    assert (
        refused(
            [allow("dynamodb:Get?tem", "arn:aws:dynamodb:*:*:table/relay-dev-Clients?able")], "dynamodb", "GetItem", get
        )
        == []
    )
    # An index is a resource of its own: the table's ARN does not cover it.
    query = {"TableName": "relay-dev-ClientsTable", "IndexName": "byToken"}
    assert refused([allow("dynamodb:Query", TABLE)], "dynamodb", "Query", query)
    assert refused([allow("dynamodb:Query", f"{TABLE}/index/*")], "dynamodb", "Query", query) == []


def test_batch_apis_are_authorized_by_their_single_action() -> None:
    batch = {"QueueUrl": QUEUE_URL, "Entries": []}
    assert refused([allow("sqs:ChangeMessageVisibility", QUEUE)], "sqs", "ChangeMessageVisibilityBatch", batch) == []
    assert refused([allow("sqs:ChangeMessageVisibilityBatch", QUEUE)], "sqs", "ChangeMessageVisibilityBatch", batch)
    assert refused([allow("sqs:SendMessage", QUEUE)], "sqs", "DeleteMessageBatch", batch)


def test_an_explicit_deny_wins_and_not_action_excludes() -> None:
    get = {"TableName": "relay-dev-ClientsTable", "Key": {}}
    deny = {"Effect": "Deny", "Action": "dynamodb:*", "Resource": TABLE}
    (problem,) = refused([allow("dynamodb:GetItem", TABLE), deny], "dynamodb", "GetItem", get)
    assert "denied by Policies[0] statement 2" in problem
    assert refused([{"Effect": "Allow", "NotAction": "dynamodb:GetItem", "Resource": "*"}], "dynamodb", "GetItem", get)


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        ({"ProjectionExpression": "#id, tokenHash", "ExpressionAttributeNames": {"#id": "clientId"}}, True),
        ({"AttributesToGet": ["clientId"]}, True),
        ({"ProjectionExpression": "clientId, webhookSecret"}, False),
        ({}, False),  # no projection: every attribute, the secret included
        ({"ProjectionExpression": "clientId", "Select": "ALL_ATTRIBUTES"}, False),
    ],
)
def test_attribute_conditions_are_evaluated_from_the_projection(params: dict[str, Any], allowed: bool) -> None:
    get = {"TableName": "relay-dev-ClientsTable", "Key": {}, **params}
    problems = refused([allow("dynamodb:GetItem", TABLE, Condition=ATTRIBUTES_ONLY)], "dynamodb", "GetItem", get)
    assert (problems == []) is allowed, problems


def test_what_the_check_cannot_evaluate_refuses_the_call_and_is_named() -> None:
    get = {"TableName": "relay-dev-ClientsTable", "Key": {"clientId": {"S": "acme"}}}
    leading = allow("dynamodb:GetItem", TABLE, Condition={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["a"]}})
    (problem,) = refused([leading], "dynamodb", "GetItem", get)
    assert "dynamodb:LeadingKeys" in problem
    (problem,) = refused(
        [allow("dynamodb:UpdateItem", TABLE, Condition=ATTRIBUTES_ONLY)], "dynamodb", "UpdateItem", get
    )
    assert "dynamodb:Attributes" in problem
    (problem,) = refused([allow("kms:Decrypt", "*")], "kms", "Decrypt", {"KeyId": "k"})
    assert "no resource mapping for kms" in problem
    (problem,) = refused(
        [], "dynamodb", "GetItem", get, policies=[{"DynamoDBReadPolicy": {"TableName": "relay-dev-ClientsTable"}}]
    )
    assert "SAM policy template DynamoDBReadPolicy" in problem


def test_the_managed_policies_sam_attaches_count_for_the_function() -> None:
    delete = {"QueueUrl": QUEUE_URL, "ReceiptHandle": "r"}
    assert refused([], "sqs", "DeleteMessage", delete)
    # DeliveryFunction has an SQS event: SAM adds AWSLambdaSQSQueueExecutionRole to its role.
    assert refused([], "sqs", "DeleteMessage", delete, name="DeliveryFunction") == []
    assert refused([], "xray", "GetSamplingRules", {}, name="DeliveryFunction") == []  # Tracing: Active
    assert refused([], "sqs", "ChangeMessageVisibility", delete, name="DeliveryFunction")


def test_a_transaction_is_authorized_item_by_item_as_the_underlying_actions() -> None:
    policy = Policy((Statement("s", {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "*"}),))
    params = {
        "TransactItems": [
            {"Update": {"TableName": "a", "Key": {}, "UpdateExpression": "SET x = :x"}},
            {"Put": {"TableName": "b", "Item": {}}},
        ]
    }

    calls = describe_all("F", policy, "dynamodb", "TransactWriteItems", params)

    assert [(call.action, call.resources) for call in calls] == [
        ("dynamodb:UpdateItem", (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/a",)),
        ("dynamodb:PutItem", (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/b",)),
    ]
    assert [decide(call, call.resources[0])[0] is not None for call in calls] == [True, False]


def test_a_post_to_a_connection_is_authorized_as_manage_connections_on_its_api_stage_and_connection() -> None:
    post = {
        "ConnectionId": "L0SM9cOFvHcCIhw=",
        "Data": b"{}",
        "iam_url": "https://abc123.execute-api.us-east-1.amazonaws.com/live/@connections/L0SM9cOFvHcCIhw%3D",
        "iam_method": "POST",
    }
    stage = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/live"
    (call,) = describe_all("ProbeFunction", Policy(()), "execute-api", "PostToConnection", post)

    assert call.action == "execute-api:ManageConnections"
    assert call.resources == (f"{stage}/POST/@connections/L0SM9cOFvHcCIhw=",)
    assert (
        refused(
            [allow("execute-api:ManageConnections", f"{stage}/POST/@connections/*")],
            "execute-api",
            "PostToConnection",
            post,
        )
        == []
    )
    other_stage = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/test/POST/@connections/*"
    assert refused([allow("execute-api:ManageConnections", other_stage)], "execute-api", "PostToConnection", post)
