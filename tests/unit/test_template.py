"""template.yaml: its handlers exist, least privilege, and the retry settings agree (`make lint` runs
cfn-lint, as sam validate --lint runs it, and checkov on it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from devstack.template import ROOT, Resolver, load, resources_of_type
from relay.flows.delivery import ATTEMPT_RESERVE_SECONDS
from relay.settings import MAX_RETRY_DELAY_SECONDS, DeliverySettings, InboundSettings
from relay.stores.clients import AUTH_ATTRIBUTES, PROFILE_ATTRIBUTES, SIGNING_ATTRIBUTES

TEMPLATE = load()
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_handler_exists(name: str) -> None:
    properties = {**TEMPLATE["Globals"]["Function"], **FUNCTIONS[name]["Properties"]}
    module, _, function = properties["Handler"].rpartition(".")
    source = Path(ROOT, properties["CodeUri"], f"{module}.py")
    assert source.is_file(), f"{name}: {source} does not exist"
    defined = {node.name for node in ast.parse(source.read_text()).body if isinstance(node, ast.FunctionDef)}
    assert function in defined, f"{name}: {source} defines no {function}()"
    assert properties["Runtime"] == "python3.13" and properties["Architectures"] == ["arm64"]


def statements(node: Any) -> list[dict[str, Any]]:
    """Every IAM statement anywhere in the template: function policies and resource policies alike."""
    if isinstance(node, dict):
        found = [node] if "Effect" in node and "Action" in node else []
        return found + [s for value in node.values() for s in statements(value)]
    if isinstance(node, list):
        return [s for value in node for s in statements(value)]
    return []


def test_no_iam_wildcard_action() -> None:
    found = statements(TEMPLATE["Resources"])
    assert len(found) >= 7  # the test looks where the policies are
    for statement in found:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement


def test_no_sam_policy_template_grants_more_than_written() -> None:
    """Only inline statements: SAM's policy templates (DynamoDBCrudPolicy, …) grant more than each function needs."""
    for name, function in FUNCTIONS.items():
        for policy in function["Properties"].get("Policies", []):
            assert "Statement" in policy, f"{name} uses a policy template: {policy}"


def test_delivery_retries_agree_with_the_queue() -> None:
    queue = TEMPLATE["Resources"]["DeliveryQueue"]["Properties"]
    delivery = FUNCTIONS["DeliveryFunction"]["Properties"]
    assert delivery["Environment"]["Variables"]["DELIVERY_MAX_ATTEMPTS"] == {"Ref": "DeliveryMaxAttempts"}
    # A message waiting behind failing ones in its batch is received again with each of their attempts;
    # the receive count is only a safety net and must never dead-letter before the function does.
    most_attempts = TEMPLATE["Parameters"]["DeliveryMaxAttempts"]["MaxValue"]
    batch_size = delivery["Events"]["DeliveryQueue"]["Properties"]["BatchSize"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] > (batch_size - 1) * most_attempts + most_attempts
    assert queue["VisibilityTimeout"] >= 6 * delivery["Timeout"], "Lambda advises six times the function timeout"
    assert (event := delivery["Events"]["DeliveryQueue"]["Properties"])["FunctionResponseTypes"] == [
        "ReportBatchItemFailures"
    ]
    assert event["BatchSize"] <= 10


def test_a_crashed_delivery_holds_its_conversations_no_longer_than_one_attempt_needs() -> None:
    """A batch whose invocation dies comes back after the queue's visibility timeout, six times the function's:
    the function has time for one attempt at the longest webhook timeout and the AWS calls after it (the flow
    begins none without), and little more; conversations are POSTed in parallel, and what finds no time left goes
    back untried at once."""
    timeout = FUNCTIONS["DeliveryFunction"]["Properties"]["Timeout"]
    longest_attempt = TEMPLATE["Parameters"]["WebhookTimeoutSeconds"]["MaxValue"] + ATTEMPT_RESERVE_SECONDS
    assert longest_attempt < timeout <= longest_attempt + 5
    assert TEMPLATE["Resources"]["DeliveryQueue"]["Properties"]["VisibilityTimeout"] == 6 * timeout == 210


def test_the_stop_hold_the_template_sets_is_the_settings_rule_for_the_functions_cache_time() -> None:
    """At least the client cache time, so every container knows of a stop before its conversation moves."""
    variables = FUNCTIONS["DeliveryFunction"]["Properties"]["Environment"]["Variables"]
    names = {
        "clients_table": "t",
        "delivery_state_table": "s",
        "attempts_table": "a",
        "delivery_queue_url": "q",
        "dead_letter_queue_url": "d",
        "responses_table": "r",
        "operations_topic_arn": "o",
    }
    deployed = DeliverySettings.model_validate(
        {**names, "delivery_stop_hold_seconds": variables["DELIVERY_STOP_HOLD_SECONDS"]}
    )
    assert "CACHE_TTL_SECONDS" not in variables, "the functions' default cache time"
    assert deployed.delivery_stop_hold_seconds == DeliverySettings.model_validate(names).delivery_stop_hold_seconds


def test_subscription_delivers_raw_messages_to_the_fifo_queue() -> None:
    subscription = TEMPLATE["Resources"]["DeliverySubscription"]["Properties"]
    assert subscription["RawMessageDelivery"] is True
    assert TEMPLATE["Resources"]["ResponsesTopic"]["Properties"]["FifoTopic"] is True
    assert TEMPLATE["Resources"]["DeliveryQueue"]["Properties"]["FifoQueue"] is True


INBOUND = {
    "clients_table": "c",
    "conversations_table": "v",
    "idempotency_table": "i",
    "bot_webhook_url": "https://bot.example/webhook",
    "bot_token_secret": "b",
    "responses_table": "r",
    "attempts_table": "a",
    "delivery_state_table": "d",
    "delivery_queue_url": "q",
    "operations_topic_arn": "o",
    "watermark_key_secret": "w",
    "conversation_token_key_secret": "t",
    "stream_url": "wss://stream.example/live",
    "rate_limits_table": "l",
}
RETRY_SCHEDULE = re.compile(TEMPLATE["Parameters"]["DeliveryRetrySchedule"]["AllowedPattern"])


def function_accepts(schedule: str) -> bool:
    try:
        DeliverySettings(
            clients_table="t",
            delivery_state_table="s",
            attempts_table="a",
            delivery_queue_url="q",
            dead_letter_queue_url="d",
            responses_table="r",
            operations_topic_arn="o",
            delivery_retry_schedule=schedule,
        )
    except ValidationError:
        return False
    return True


def test_retry_schedule_pattern_takes_every_delay_sqs_allows_and_no_other() -> None:
    """CloudFormation refuses at deploy the delays the delivery function would refuse at every start."""
    accepted = [n for n in range(10 * MAX_RETRY_DELAY_SECONDS) if RETRY_SCHEDULE.fullmatch(str(n))]
    assert accepted == list(range(MAX_RETRY_DELAY_SECONDS + 1))


@pytest.mark.parametrize(
    "schedule",
    [
        TEMPLATE["Parameters"]["DeliveryRetrySchedule"]["Default"],
        f"0,{MAX_RETRY_DELAY_SECONDS}",
        f"5,{MAX_RETRY_DELAY_SECONDS + 1}",
        f"{MAX_RETRY_DELAY_SECONDS * 10}",
        "",
        "-1",
        "5,x",
    ],
)
def test_retry_schedule_pattern_agrees_with_the_delivery_function(schedule: str) -> None:
    assert bool(RETRY_SCHEDULE.fullmatch(schedule)) == function_accepts(schedule)


@pytest.mark.parametrize("schedule", ["5,", ",5", "5,,300", "5, 300", "1e3"])
def test_retry_schedule_pattern_refuses_what_is_not_a_plain_list(schedule: str) -> None:
    assert not RETRY_SCHEDULE.fullmatch(schedule)


def test_outputs_take_the_api_url_from_the_api() -> None:
    """ApiEndpoint is right in every partition (amazonaws.com.cn, …); a hand-built URL is not."""
    assert "amazonaws.com" not in yaml.safe_dump(TEMPLATE["Outputs"])
    assert TEMPLATE["Outputs"]["ApiUrl"]["Value"] == {"Fn::GetAtt": ["HttpApi", "ApiEndpoint"]}


def test_an_intrinsic_function_the_local_stack_cannot_resolve_is_named_with_its_place(tmp_path: Path) -> None:
    source = tmp_path / "template.yaml"
    source.write_text("Resources:\n  Queue:\n    Properties:\n      QueueName: !Join ['-', [a, b]]\n")
    template = load(source)
    resolver = Resolver(template, parameters={}, pseudo={})
    with pytest.raises(ValueError, match=r"Resources\.Queue\.Properties\.QueueName: Fn::Join is an intrinsic function"):
        resolver(template["Resources"]["Queue"]["Properties"])


@pytest.mark.parametrize(
    ("function", "reads"),
    [
        ("InboundFunction", [AUTH_ATTRIBUTES, PROFILE_ATTRIBUTES + SIGNING_ATTRIBUTES]),
        ("StreamSocketFunction", [AUTH_ATTRIBUTES]),
    ],
)
def test_what_checks_tokens_may_read_only_the_attributes_its_stores_read(
    function: str, reads: list[tuple[str, ...]]
) -> None:
    statements = [
        statement
        for policy in FUNCTIONS[function]["Properties"]["Policies"]
        for statement in policy["Statement"]
        if statement["Resource"] == {"Fn::GetAtt": ["ClientsTable", "Arn"]}
        and "dynamodb:GetItem" in statement["Action"]
    ]
    assert [s["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"] for s in statements] == list(
        map(list, reads)
    )
    assert all(s["Condition"]["StringEqualsIfExists"]["dynamodb:Select"] == "SPECIFIC_ATTRIBUTES" for s in statements)
    assert not any({"tokenHash", "previousTokenHash"} & set(attributes) for attributes in reads[1:])


def test_the_responses_log_is_subscribed_like_the_delivery_queue() -> None:
    resources = TEMPLATE["Resources"]
    subscription = resources["ResponsesLogSubscription"]["Properties"]
    queue = resources["ResponsesLogQueue"]["Properties"]
    function = FUNCTIONS["ResponsesLogFunction"]["Properties"]
    assert subscription["RawMessageDelivery"] is True
    assert subscription["Endpoint"] == {"Fn::GetAtt": ["ResponsesLogQueue", "Arn"]}
    assert queue["FifoQueue"] is True and queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["ResponsesLogDeadLetterQueue", "Arn"]
    }
    assert resources["ResponsesLogDeadLetterQueue"]["Properties"]["FifoQueue"] is True
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"], "Lambda advises six times the function timeout"
    assert function["Events"]["ResponsesLogQueue"]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_responses_log_is_written_by_its_function_and_only_queried_by_its_readers() -> None:
    grants = {
        name: sorted(
            action
            for statement in statements(function["Properties"]["Policies"])
            if statement["Resource"] == {"Fn::GetAtt": ["ResponsesTable", "Arn"]}
            for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        )
        for name, function in FUNCTIONS.items()
    }
    assert {name: actions for name, actions in grants.items() if actions} == {
        "ResponsesLogFunction": ["dynamodb:PutItem"],
        "InboundFunction": ["dynamodb:Query"],
        "DeliveryFunction": ["dynamodb:Query"],  # a parked conversation's responses, delivered when it is back
        "StreamFunction": ["dynamodb:Query"],
        "StreamSocketFunction": ["dynamodb:Query"],
    }


def test_the_client_api_answers_every_wait_within_api_gateways_30_seconds() -> None:
    """A wait counts from the request's arrival, so the longest wait or the slowest bot, plus the margin kept to
    answer, must fit in the function's timeout, which must end before API Gateway's 30 s."""
    from relay.flows.inbound import ANSWER_MARGIN_SECONDS
    from relay.flows.polling import LONG_POLL_MAX_SECONDS, REPLY_WAIT_MAX_SECONDS

    timeout = FUNCTIONS["InboundFunction"]["Properties"]["Timeout"]
    slowest_bot = TEMPLATE["Parameters"]["BotTimeoutSeconds"]["MaxValue"]
    assert max(REPLY_WAIT_MAX_SECONDS, LONG_POLL_MAX_SECONDS, slowest_bot) + ANSWER_MARGIN_SECONDS <= timeout < 30


# ── the stream ──


def test_the_stream_function_may_post_only_to_this_apis_connections_on_its_stage() -> None:
    (statement,) = [
        s for s in statements(FUNCTIONS["StreamFunction"]["Properties"]["Policies"]) if "execute-api" in str(s)
    ]
    stage = TEMPLATE["Resources"]["StreamStage"]["Properties"]["StageName"]
    assert statement["Action"] == "execute-api:ManageConnections"
    assert statement["Resource"] == {
        "Fn::Sub": f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{StreamApi}}/{stage}"
        "/POST/@connections/*"
    }
    granted = [f for f, spec in FUNCTIONS.items() if "execute-api" in str(spec["Properties"].get("Policies"))]
    assert granted == ["StreamFunction"]


def test_the_stream_urls_name_the_stage() -> None:
    stage = TEMPLATE["Resources"]["StreamStage"]["Properties"]["StageName"]
    stream = FUNCTIONS["StreamFunction"]["Properties"]["Environment"]["Variables"]["STREAM_CONNECTIONS_URL"]
    inbound = FUNCTIONS["InboundFunction"]["Properties"]["Environment"]["Variables"]["STREAM_URL"]
    assert stream["Fn::Sub"].endswith(f"/{stage}") and inbound["Fn::Sub"].endswith(f"/{stage}")
    assert TEMPLATE["Outputs"]["StreamUrl"]["Value"] == inbound


def test_no_access_log_records_a_query_string_or_a_path() -> None:
    """The stream's URL carries the conversation token, the bot's the path secret."""
    formats = [
        TEMPLATE["Resources"][name]["Properties"]["AccessLogSettings"]["Format"] for name in ("HttpApi", "StreamStage")
    ]
    for log_format in formats:
        assert "$context.routeKey" in log_format
        assert not re.search(r"querystring|path|\$input|\$request", log_format, re.IGNORECASE), log_format


def test_the_stream_queue_keeps_each_conversation_in_order_and_retries_a_failed_nudge() -> None:
    queue = TEMPLATE["Resources"]["StreamQueue"]["Properties"]
    function = FUNCTIONS["StreamFunction"]["Properties"]
    assert queue["FifoQueue"] is True and queue["ContentBasedDeduplication"] is False
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"], "Lambda advises six times the function timeout"
    assert function["Events"]["StreamQueue"]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert TEMPLATE["Resources"]["StreamDeadLetterQueue"]["Properties"]["FifoQueue"] is True


def test_a_connection_is_kept_a_little_longer_than_api_gateway_keeps_it_open() -> None:
    from relay.flows.stream import CONNECTING_SECONDS
    from relay.stores.connections import CONNECTION_TTL_SECONDS

    assert 2 * 3600 < CONNECTION_TTL_SECONDS <= 3 * 3600
    socket_timeout = FUNCTIONS["StreamSocketFunction"]["Properties"]["Timeout"]
    assert socket_timeout < 29 < CONNECTING_SECONDS  # $connect ends before a 410 is taken for a gone connection


BROWSER_ORIGINS = re.compile(TEMPLATE["Parameters"]["BrowserOrigins"]["AllowedPattern"])


@pytest.mark.parametrize(
    "origins",
    [
        "",
        "https://shop.example",
        "https://a.example,http://127.0.0.1:3000",
        "https://a.example/",
        "a.example",
        "https://a.example, https://b.example",
        "https://a.example/chat",
        "https://a.example,,https://b.example",
    ],
)
def test_browser_origins_pattern_agrees_with_the_client_api(origins: str) -> None:
    try:
        InboundSettings(**{**INBOUND, "browser_origins": origins})
        accepted = True
    except ValidationError:
        accepted = False
    assert bool(BROWSER_ORIGINS.fullmatch(origins)) == accepted
