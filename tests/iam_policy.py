"""The IAM check: each AWS call a function's handler makes, evaluated against that function's role from template.yaml.

Every LocalFunction has a boto3 session of its own (its role), so each call its clients make, on any thread, is
recorded for it: the IAM action it needs, the resources it names and the request's condition keys. `violations`
evaluates them as IAM does: an explicit Deny wins, otherwise an Allow must match action, resource and condition.
What this module cannot evaluate (a condition key it does not derive, a SAM policy template, an unknown managed
policy, a service without a resource mapping) never allows a call: the failure names it.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import botocore.handlers

import devstack.lambdas
from devstack.provision import ACCOUNT, REGION, FunctionSpec
from devstack.template import load

# APIs authorized as another action (Service Authorization Reference; SQS's batch APIs, SNS's PublishBatch).
AUTHORIZED_AS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sns:PublishBatch": "sns:Publish",
    # The @connections API (Service Authorization Reference, Amazon API Gateway Management).
    "execute-api:PostToConnection": "execute-api:ManageConnections",
    "execute-api:GetConnection": "execute-api:ManageConnections",
    "execute-api:DeleteConnection": "execute-api:ManageConnections",
}
# IAM's service prefix where it differs from the SDK's signing name.
PREFIX_OF = {"monitoring": "cloudwatch"}

_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
# The AWS managed policies SAM attaches by itself (always; Tracing: Active; an SQS event), as AWS publishes them.
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": [{"Effect": "Allow", "Action": _LOGS, "Resource": "*"}],
    "AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", *_LOGS],
            "Resource": "*",
        }
    ],
}
_GLOBAL_KEYS = {"aws:RequestedRegion": (REGION,), "aws:SecureTransport": ("true",), "aws:PrincipalAccount": (ACCOUNT,)}
_DYNAMODB_READS = {"GetItem", "Query", "Scan"}


@dataclass(frozen=True)
class Statement:
    origin: str  # where it comes from, for the messages: "Policies[0] statement 2", "AWSLambdaBasicExecutionRole (SAM)"
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Policy:
    """A function's role: its statements, and what of it this module cannot read (so it allows nothing)."""

    statements: tuple[Statement, ...]
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """One AWS call of a function, as IAM sees it."""

    function: str
    policy: Policy = field(repr=False, compare=False)
    operation: str  # the SDK's service:Operation
    action: str
    resources: tuple[str, ...]  # empty: the service has no resource mapping here
    context: Mapping[str, tuple[str, ...]]  # condition keys the request has, with their values
    known: frozenset[str]  # condition keys evaluated for this request (present in `context` or absent from it)
    test: str = ""


def role_policy(spec: FunctionSpec) -> Policy:
    """The function's Policies (resolved by provision) and the managed policies SAM adds to its role."""
    policies = spec.policies if isinstance(spec.policies, list | tuple) else [spec.policies]
    statements: list[Statement] = []
    unreadable: list[str] = []
    for index, policy in enumerate(policies):
        if isinstance(policy, str) and policy.rsplit("/", 1)[-1] in MANAGED_POLICIES:
            name = policy.rsplit("/", 1)[-1]
            statements += [Statement(name, body) for body in MANAGED_POLICIES[name]]
        elif isinstance(policy, dict) and "Statement" in policy:
            bodies = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
            statements += [
                Statement(
                    f"Policies[{index}] statement {number}" + (f" ({body['Sid']})" if "Sid" in body else ""), body
                )
                for number, body in enumerate(bodies, 1)
            ]
        else:
            kind = policy if isinstance(policy, str) else f"SAM policy template {next(iter(policy), '?')}"
            unreadable.append(f"Policies[{index}] {kind}")
    for name in _sam_managed_policies(spec.name):
        statements += [Statement(f"{name} (added by SAM)", body) for body in MANAGED_POLICIES[name]]
    return Policy(tuple(statements), tuple(unreadable))


@functools.cache
def _sam_managed_policies(function: str) -> tuple[str, ...]:
    """Read once per function: every recorder of every test asks, and each load() is a copy of the whole template."""
    template = load()
    spec = template["Resources"].get(function, {})
    props = {**template.get("Globals", {}).get("Function", {}), **spec.get("Properties", {})}
    names = ["AWSLambdaBasicExecutionRole"]
    if props.get("Tracing") == "Active":
        names.append("AWSXrayWriteOnlyAccess")
    if any(event.get("Type") == "SQS" for event in props.get("Events", {}).values()):
        names.append("AWSLambdaSQSQueueExecutionRole")
    return tuple(names)


def describe(
    function: str, policy: Policy, prefix: str, operation: str, params: Mapping[str, Any], test: str = ""
) -> Call:
    """The call `prefix:operation` with `params`, as IAM authorizes it."""
    action = f"{prefix}:{operation}"
    mapper = _RESOURCES.get(prefix)
    context, known = dict(_GLOBAL_KEYS), set(_GLOBAL_KEYS)
    if prefix == "dynamodb":
        _dynamodb_keys(operation, params, context, known)
    return Call(
        function,
        policy,
        action,
        AUTHORIZED_AS.get(action, action),
        tuple(dict.fromkeys(mapper(params))) if mapper else (),
        context,
        frozenset(known),
        test,
    )


# A transaction is authorized item by item, as the underlying single-item action on that item's table
# (DynamoDB developer guide, "Using IAM with DynamoDB transactions").
_TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def describe_all(
    function: str, policy: Policy, prefix: str, operation: str, params: Mapping[str, Any], test: str = ""
) -> list[Call]:
    """The calls IAM authorizes for one API call: one, or one per item of a DynamoDB transaction."""
    if prefix == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return [
            describe(function, policy, prefix, _TRANSACTION_ITEM_ACTIONS[kind], item_params, test)
            for item in params.get("TransactItems", [])
            for kind, item_params in item.items()
        ]
    return [describe(function, policy, prefix, operation, params, test)]


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def _dynamodb_tables(params: Mapping[str, Any]) -> list[str]:
    tables = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {}))
    arns = [table if table.startswith("arn:") else _arn("dynamodb", f"table/{table}") for table in tables]
    index = f"/index/{params['IndexName']}" if "IndexName" in params else ""
    return [arn + index for arn in arns] or ["*"]


def _queue(params: Mapping[str, Any]) -> list[str]:
    if "QueueUrl" in params:
        account, name = params["QueueUrl"].rstrip("/").split("/")[-2:]
        return [f"arn:aws:sqs:{REGION}:{account}:{name}"]
    return [_arn("sqs", params["QueueName"])] if "QueueName" in params else ["*"]


def _named(*keys: str, service: str, kind: str) -> Callable[[Mapping[str, Any]], list[str]]:
    """Resources named by the first of `keys` in the request: an ARN, or a name made into one."""

    def resources(params: Mapping[str, Any]) -> list[str]:
        value = next((params[key] for key in keys if key in params), None)
        if value is None:
            return ["*"]
        return [value if value.startswith("arn:") else _arn(service, f"{kind}{value}")]

    return resources


def _connection(params: Mapping[str, Any]) -> list[str]:
    """An @connections call's resource: the API (from the endpoint's host), stage, method and connection."""
    url = urlsplit(params["iam_url"])
    api = url.hostname.split(".")[0] if url.hostname and ".execute-api." in url.hostname else "*"
    stage, _, connection = url.path.strip("/").partition("/@connections/")
    return [_arn("execute-api", f"{api}/{stage}/{params['iam_method']}/@connections/{unquote(connection)}")]


_RESOURCES: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "dynamodb": _dynamodb_tables,
    "sqs": _queue,
    "sns": _named("TopicArn", "TargetArn", "ResourceArn", service="sns", kind=""),
    # A secret named without its ARN gets no random suffix here, so a policy naming the full ARN refuses it.
    "secretsmanager": _named("SecretId", service="secretsmanager", kind="secret:"),
    "xray": lambda _: ["*"],
    "execute-api": _connection,
}


def _dynamodb_keys(operation: str, params: Mapping[str, Any], context: dict[str, Any], known: set[str]) -> None:
    """dynamodb:Attributes and dynamodb:Select of a read (from its projection), ReturnValues of any request."""
    for key in ("ReturnValues", "ReturnConsumedCapacity"):
        known.add(f"dynamodb:{key}")
        if key in params:
            context[f"dynamodb:{key}"] = (params[key],)
    if operation not in _DYNAMODB_READS:
        return
    known.update({"dynamodb:Attributes", "dynamodb:Select"})
    names = params.get("ExpressionAttributeNames", {})
    attributes = list(params.get("AttributesToGet", []))
    if "ProjectionExpression" in params:
        paths = params["ProjectionExpression"].split(",")
        attributes += [names.get(top, top) for top in (re.split(r"[.\[]", path.strip())[0] for path in paths)]
    if attributes:
        context["dynamodb:Attributes"] = tuple(dict.fromkeys(attributes))
    # Without a projection a read returns every attribute (index reads: the projected ones).
    context["dynamodb:Select"] = (params.get("Select") or ("SPECIFIC_ATTRIBUTES" if attributes else "ALL_ATTRIBUTES"),)


# ── evaluation ──
class _Unevaluable(Exception):
    pass


def _pattern(glob: str, ignore_case: bool = False) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _covers(body: Mapping[str, Any], field_name: str, value: str, ignore_case: bool) -> bool:
    if field_name in body:
        return any(_pattern(p, ignore_case).match(value) for p in _listed(body[field_name]))
    return not any(_pattern(p, ignore_case).match(value) for p in _listed(body[f"Not{field_name}"]))


_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda value, expected: value == expected,
    "StringEqualsIgnoreCase": lambda value, expected: value.lower() == expected.lower(),
    "StringLike": lambda value, expected: bool(_pattern(expected).match(value)),
    "ArnEquals": lambda value, expected: bool(_pattern(expected).match(value)),
    "ArnLike": lambda value, expected: bool(_pattern(expected).match(value)),
    "Bool": lambda value, expected: value.lower() == expected.lower(),
}


def _holds(operator: str, key: str, expected: Any, call: Call) -> bool:
    if key not in call.known:
        raise _Unevaluable(f"condition key {key} (not derived from {call.operation} requests in tests/iam_policy.py)")
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    values = call.context.get(key)
    if name == "Null":
        return (values is None) == (_listed(expected)[0].lower() == "true")
    negated = "Not" in name
    matcher = _MATCHERS.get(name.replace("Not", ""))
    if matcher is None:
        raise _Unevaluable(f"condition operator {operator}")
    if values is None:
        return qualifier == "ForAllValues" or (not qualifier and (if_exists or negated))
    results = [any(matcher(value, e) for e in _listed(expected)) != negated for value in values]
    return all(results) if qualifier == "ForAllValues" or (negated and not qualifier) else any(results)


def decide(call: Call, resource: str) -> tuple[str | None, str]:
    """(the statement allowing `call` on `resource`, "") or (None, why it is not allowed)."""
    allowed_by, reasons = None, []
    for statement in call.policy.statements:
        body = statement.body
        if not (_covers(body, "Action", call.action, True) and _covers(body, "Resource", resource, False)):
            continue
        try:
            holds = all(
                _holds(operator, key, expected, call)
                for operator, keys in body.get("Condition", {}).items()
                for key, expected in keys.items()
            )
        except _Unevaluable as unknown:
            if body["Effect"] == "Deny":
                return None, f"{statement.origin} may deny it: cannot evaluate its {unknown}"
            reasons.append(f"{statement.origin} not evaluated: {unknown}")
            continue
        if body["Effect"] == "Deny" and holds:
            return None, f"denied by {statement.origin}"
        if holds:
            allowed_by = allowed_by or statement.origin
        else:
            reasons.append(f"the condition of {statement.origin} does not hold for {dict(call.context)}")
    if allowed_by:
        return allowed_by, ""
    reasons += [f"{part} not evaluated by tests/iam_policy.py" for part in call.policy.unreadable]
    return None, "; ".join(reasons) or "no statement allows this action on this resource"


@dataclass(frozen=True)
class Violation:
    test: str
    function: str
    action: str
    resource: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.test}: {self.function} calls {self.action} on {self.resource}, "
            f"which its policy in template.yaml does not allow: {self.reason}"
        )


def violations(calls: Iterable[Call]) -> list[Violation]:
    """Every call not allowed by its function's policy, once per test, function, action and resource."""
    found: dict[tuple[str, str, str, str], str] = {}
    for call in calls:
        if not call.resources:
            prefix = call.action.split(":")[0]
            found[(call.test, call.function, call.action, "?")] = f"no resource mapping for {prefix} here: add one"
        for resource in call.resources:
            allowed_by, reason = decide(call, resource)
            if allowed_by is None:
                found[(call.test, call.function, call.action, resource)] = reason
    return [Violation(*key, reason) for key, reason in found.items()]


def summary(calls: Iterable[Call]) -> str:
    """Per function, each action and resource it was seen calling, how often and which statement allows it."""
    counted: Counter[tuple[str, str, str, str]] = Counter()
    tests: dict[str, set[str]] = {}
    for call in calls:
        tests.setdefault(call.function, set()).add(call.test)
        for resource in call.resources or ("?",):
            allowed_by = decide(call, resource)[0] if call.resources else None
            name = re.sub(r"^(secret:.+)-\w{6}$", r"\1", resource.split(":", 5)[-1])  # without the random suffix
            counted[(call.function, call.action, name, allowed_by or "NOT ALLOWED")] += 1
    lines = ["AWS calls checked against each function's policy in template.yaml (action, resource: calls, allowed by)"]
    for function in sorted(tests):
        lines.append(f"{function} ({len(tests[function])} tests):")
        lines += [
            f"  {action} {resource}: {count} calls, {allowed_by}"
            for (name, action, resource, allowed_by), count in sorted(counted.items())
            if name == function
        ]
    return "\n".join(lines)


class CallRecorder:
    """Records every AWS call of every LocalFunction, attributed to the function whose session (role) made the client.

    A client made during an invocation from boto3's default session or a new one (as Powertools' providers make
    theirs) counts for the function being invoked; calls outside any function (a test's own) are not recorded.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.test = ""
        self._lock = threading.Lock()
        self._policies: dict[int, tuple[FunctionSpec, Policy]] = {}

    def install(self) -> None:
        """Hooks into every botocore session created from now on, as moto does."""
        botocore.handlers.BUILTIN_HANDLERS.extend(
            [("before-parameter-build", _keep_params), ("before-call", self._record)]
        )
        devstack.lambdas.session_observers.append(self.observe)

    def observe(self, spec: FunctionSpec, session: boto3.Session) -> None:
        """Tags the calls of the clients of this function's own session with the function."""
        session.events.register("before-parameter-build", lambda context, **_: context.update(iam_function=spec))

    def take(self) -> list[Call]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def _record(self, model: Any, context: dict[str, Any], params: Mapping[str, Any], **_: Any) -> None:
        spec = context.get("iam_function") or devstack.lambdas.running_function.get()
        if spec is None:
            return
        signing_name = model.service_model.signing_name
        prefix = PREFIX_OF.get(signing_name, signing_name)
        call_params = context["iam_params"]
        if prefix == "execute-api":  # the resource is in the endpoint: the API's host and the stage's path
            call_params = {**call_params, "iam_url": params["url"], "iam_method": model.http["method"]}
        calls = describe_all(spec.name, self._policy(spec), prefix, model.name, call_params, self.test)
        with self._lock:
            self.calls.extend(calls)

    def _policy(self, spec: FunctionSpec) -> Policy:
        with self._lock:
            if id(spec) not in self._policies or self._policies[id(spec)][0] is not spec:
                self._policies[id(spec)] = (spec, role_policy(spec))
            return self._policies[id(spec)][1]


def _keep_params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    """The call's parameters as the caller gave them (before-call sees them serialized)."""
    context["iam_params"] = dict(params)
