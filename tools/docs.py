"""The docs' figures and tables that come from template.yaml: `make docs` writes them into their marked regions.

A region is `<!-- template: NAME -->` ... `<!-- /template: NAME -->`, in README.md or a page under docs/ (each
region in exactly one page: the one whose task it serves). tests/unit/test_docs.py fails while one is stale, so a
parameter, output, alarm, secret or function added to the template reaches the docs by running `make docs` again.
What the template cannot say (prices, what a function does per message, service name limits) is written once
here, beside the arithmetic that uses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.template import ROOT, load, resources_of_type
from relay.settings import InboundSettings
from relay.stores.delivery_state import STATE_TTL_SECONDS

README = ROOT / "README.md"
DOCS = ROOT / "docs"
REGION = re.compile(r"(<!-- template: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /template: (?P=name) -->)", re.S)

# ── The stack name's limit ──────────────────────────────────────────────────────────────────
STACK_NAME = "${AWS::StackName}"
CLOUDFORMATION_STACK_NAME_LIMIT = 128
NAME_LIMITS: dict[tuple[str, str], tuple[str, int]] = {
    # (resource type, naming property): the service and the most characters it allows in the name
    ("AWS::SQS::Queue", "QueueName"): ("SQS", 80),
    ("AWS::SNS::Topic", "TopicName"): ("SNS", 256),
    ("AWS::DynamoDB::Table", "TableName"): ("DynamoDB", 255),
    ("AWS::Serverless::Function", "FunctionName"): ("Lambda", 64),
    ("AWS::Lambda::Function", "FunctionName"): ("Lambda", 64),
    ("AWS::IAM::Role", "RoleName"): ("IAM", 64),
    ("AWS::CloudWatch::Alarm", "AlarmName"): ("CloudWatch", 255),
    ("AWS::CloudWatch::Dashboard", "DashboardName"): ("CloudWatch", 255),
    ("AWS::Logs::LogGroup", "LogGroupName"): ("CloudWatch Logs", 512),
    ("AWS::SecretsManager::Secret", "Name"): ("Secrets Manager", 512),
    ("AWS::ApiGatewayV2::Api", "Name"): ("API Gateway", 128),
}


@dataclass(frozen=True)
class StackBuiltName:
    """A resource name the template builds from the stack's name, such as `${AWS::StackName}-dlq.fifo`."""

    resource: str
    pattern: str
    service: str
    limit: int

    @property
    def room(self) -> int:
        """The longest stack name that keeps this name within its service's limit."""
        return self.limit - (len(self.pattern) - len(STACK_NAME))


def stack_built_names(template: dict[str, Any]) -> list[StackBuiltName]:
    names = []
    for resource, spec in template["Resources"].items():
        for prop, value in spec.get("Properties", {}).items():
            pattern = value.get("Fn::Sub") if isinstance(value, dict) else None
            if not (prop.endswith("Name") and isinstance(pattern, str) and STACK_NAME in pattern):
                continue
            if "${" in pattern.replace(STACK_NAME, ""):
                raise ValueError(f"{resource}.{prop}: only {STACK_NAME} can vary in a name whose length is checked")
            if (spec["Type"], prop) not in NAME_LIMITS:
                raise ValueError(f"{resource}.{prop}: no length limit known for {spec['Type']}; add it to NAME_LIMITS")
            service, limit = NAME_LIMITS[spec["Type"], prop]
            names.append(StackBuiltName(resource, pattern, service, limit))
    return names


def stack_name_limit(template: dict[str, Any]) -> int:
    return min([CLOUDFORMATION_STACK_NAME_LIMIT, *(name.room for name in stack_built_names(template))])


def stack_name_region(template: dict[str, Any]) -> str:
    names = stack_built_names(template)
    limit = stack_name_limit(template)
    tightest = min(names, key=lambda name: name.room, default=None)
    if tightest is None or tightest.room > CLOUDFORMATION_STACK_NAME_LIMIT:
        return f"A stack name has at most **{limit}** characters, CloudFormation's own limit.\n"
    example = tightest.pattern.replace(STACK_NAME, "<stack name>")
    return (
        f"A stack name has at most **{limit}** characters: the longest name the template builds from it,"
        f" `{example}` (`{tightest.resource}`), has to fit {tightest.service}'s {tightest.limit}.\n"
    )


# ── Helpers ─────────────────────────────────────────────────────────────────────────────────
def _text(value: str) -> str:
    """Template prose as one table cell: whitespace collapsed; pipes and `<` (not an HTML tag here) escaped."""
    return " ".join(value.split()).replace("|", "\\|").replace("<", "\\<")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [header, ["---" for _ in header], *rows]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)


def references(value: Any, name: str) -> bool:
    """Whether a template value refers to the resource `name` (Ref, GetAtt or a ${name...} in a Sub)."""
    if isinstance(value, list):
        return any(references(item, name) for item in value)
    if not isinstance(value, dict):
        return False
    if value.get("Ref") == name:
        return True
    if "Fn::GetAtt" in value:
        return bool(value["Fn::GetAtt"][0] == name)
    if "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        pattern, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
        return bool(re.search(r"\$\{" + re.escape(name) + r"[.}]", pattern)) or references(variables, name)
    return any(references(item, name) for item in value.values())


def _name(value: Any) -> str:
    """A dimension's or resource's value as the docs name it: the resource it refers to, or itself."""
    if isinstance(value, dict):
        if "Ref" in value:
            return f"`{value['Ref']}`"
        if "Fn::GetAtt" in value:
            return f"`{value['Fn::GetAtt'][0]}`"
    return f"`{value}`"


def _outputs_of(template: dict[str, Any], resource: str) -> list[str]:
    return [name for name, output in template.get("Outputs", {}).items() if references(output["Value"], resource)]


def _statements(function: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in function["Properties"].get("Policies", []):
        if isinstance(policy, dict):
            yield from policy.get("Statement", [])


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of_type(template, "AWS::Serverless::Function")


# ── Parameters and outputs ──────────────────────────────────────────────────────────────────
def parameters_region(template: dict[str, Any]) -> str:
    rows = []
    for name, spec in template["Parameters"].items():
        if "Description" not in spec:
            raise ValueError(f"parameter {name} has no Description in template.yaml; docs/deploy.md's table shows it")
        default = "required" if "Default" not in spec else f"`{spec['Default']}`" if spec["Default"] != "" else "empty"
        if "ConstraintDescription" in spec:
            allowed = _text(spec["ConstraintDescription"])
        elif "AllowedValues" in spec:
            allowed = ", ".join(f"`{value}`" for value in spec["AllowedValues"])
        elif "MinValue" in spec or "MaxValue" in spec:
            allowed = f"{spec.get('MinValue', '')} to {spec.get('MaxValue', '')}".strip()
        else:
            allowed = "any"
        rows.append((f"`{name}`", _text(spec["Description"]), default, allowed))
    return _table(("parameter", "meaning", "default", "allowed"), rows)


def outputs_region(template: dict[str, Any]) -> str:
    rows = [(f"`{name}`", _text(output["Description"])) for name, output in template.get("Outputs", {}).items()]
    return _table(("output", "what it is"), rows)


# ── Secrets ─────────────────────────────────────────────────────────────────────────────────
def secrets_region(template: dict[str, Any]) -> str:
    rows = []
    for name, spec in resources_of_type(template, "AWS::SecretsManager::Secret").items():
        readers = [
            f"`{function}`"
            for function, spec_ in _functions(template).items()
            if any(
                "secretsmanager:GetSecretValue" in _actions(statement) and references(statement["Resource"], name)
                for statement in _statements(spec_)
            )
        ]
        outputs = ", ".join(f"`{output}`" for output in _outputs_of(template, name)) or "none"
        holds = _text(spec["Properties"].get("Description", ""))
        rows.append((f"`{name}`", holds, ", ".join(readers) or "no function", outputs))
    return _table(("secret", "what it holds", "read by", "output"), rows)


# ── Alarms and dashboards ───────────────────────────────────────────────────────────────────
COMPARISONS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": "≥",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "≤",
}


def _period(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def alarm_metrics(alarm: dict[str, Any]) -> int:
    """The metrics an alarm reads: CloudWatch bills an alarm per metric it evaluates."""
    metrics = alarm["Properties"].get("Metrics")
    return sum(1 for metric in metrics if "MetricStat" in metric) if metrics else 1


def _watches(props: dict[str, Any]) -> str:
    if "Metrics" in props:
        result = next(metric for metric in props["Metrics"] if metric.get("ReturnData", True))
        read = [metric["MetricStat"] for metric in props["Metrics"] if "MetricStat" in metric]
        names = sorted({stat["Metric"]["MetricName"] for stat in read})
        namespaces = sorted({stat["Metric"]["Namespace"] for stat in read})
        subject = (
            f"{result.get('Label', result['Id'])}: `{result['Expression']}` of {len(read)}"
            f" {' '.join(namespaces)} `{'`, `'.join(names)}`"
        )
        statistic, period = read[0]["Stat"], read[0]["Period"]
    else:
        dimensions = ", ".join(_name(dimension["Value"]) for dimension in props.get("Dimensions", []))
        subject = f"{props['Namespace']} `{props['MetricName']}`" + (f" of {dimensions}" if dimensions else "")
        statistic, period = props["Statistic"], props["Period"]
    periods = props["EvaluationPeriods"]
    over = _period(period) if periods == 1 else f"{periods} periods of {_period(period)}"
    return f"{subject}; {statistic} over {over} {COMPARISONS[props['ComparisonOperator']]} {props['Threshold']}"


def alarms_region(template: dict[str, Any]) -> str:
    rows = [
        (f"`{name}`", _text(alarm["Properties"]["AlarmDescription"]), _watches(alarm["Properties"]))
        for name, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items()
    ]
    dashboards = [
        f"`{name}` (output {', '.join(f'`{output}`' for output in _outputs_of(template, name)) or 'none'})"
        for name in resources_of_type(template, "AWS::CloudWatch::Dashboard")
    ]
    return (
        _table(("alarm", "goes off when", "what it watches"), rows)
        + f"\n{len(rows)} alarms; dashboards: {', '.join(dashboards) or 'none'}.\n"
    )


# ── How long things are kept ────────────────────────────────────────────────────────────────
def _days(seconds: int) -> str:
    return f"{seconds // 86400} days" if seconds % 86400 == 0 and seconds > 86400 else f"{seconds // 3600} hours"


def retention_region(template: dict[str, Any]) -> str:
    fields = InboundSettings.model_fields
    retention = template["Parameters"]["ResponseRetentionDays"]["Default"]
    queues = resources_of_type(template, "AWS::SQS::Queue")
    kept = sorted({int(queue["Properties"].get("MessageRetentionPeriod", 345600)) for queue in queues.values()})
    logs = resources_of_type(template, "AWS::Logs::LogGroup")
    log_days = sorted({int(group["Properties"]["RetentionInDays"]) for group in logs.values()})
    rows = [
        (
            "a conversation (which client and user a bot conversation belongs to)",
            f"{fields['conversation_ttl_days'].default} days after its last message",
            "`conversation_ttl_days` (relay/settings.py); the bot's later answers to it are `Unroutable`",
        ),
        (
            "a bot response in the responses log",
            f"{retention} days",
            "`ResponseRetentionDays`",
        ),
        (
            "a `messageId`, against repeats",
            _days(int(fields["idempotency_ttl_seconds"].default)),
            "`idempotency_ttl_seconds` (relay/settings.py)",
        ),
        (
            "a response waiting in a queue or dead-letter queue",
            " or ".join(_days(seconds) for seconds in kept),
            "each queue's `MessageRetentionPeriod`",
        ),
        (
            "a delivery attempt's record (the attempt log) and a response skipped while its endpoint was off",
            f"{template['Parameters']['AttemptRetentionDays']['Default']} days",
            "`AttemptRetentionDays`",
        ),
        (
            "a failing response's attempt counter",
            _days(STATE_TTL_SECONDS),
            "`STATE_TTL_SECONDS` (relay/stores/delivery_state.py)",
        ),
        (
            "function and access logs",
            " or ".join(f"{days} days" for days in log_days),
            "each log group's `RetentionInDays`",
        ),
        (
            "a client record, in a warm function",
            f"{fields['cache_ttl_seconds'].default:g} s",
            "`cache_ttl_seconds` (relay/settings.py): how long a disable, rotation or stop takes to reach every"
            " function",
        ),
    ]
    return _table(("what", "kept", "set by"), rows)


# ── What it costs ───────────────────────────────────────────────────────────────────────────
RESPONSES_PER_MESSAGE = 2
"""N: the bot responses each client message gets, each delivered to one response URL."""


@dataclass(frozen=True)
class Work:
    """What a function does for each client message: invocations per message and per bot response, billed time."""

    per_message: int
    per_response: int
    billed_ms: int
    why: str


WORK = {
    "InboundFunction": Work(1, 0, 300, "most of it waiting for the bot to take the message"),
    "BotResponseFunction": Work(0, 1, 50, "the conversation from the cache and one publish"),
    "DeliveryFunction": Work(
        0,
        1,
        150,
        "one signed POST per invocation and its attempt record (batches of up to 10 form only under load, and"
        " lower this)",
    ),
    "ResponsesLogFunction": Work(
        0, 1, 50, "one conditional put per response, and a look for the conversation's stream connections"
    ),
    "StreamFunction": Work(
        0, 0, 30, "nudged per response only while a browser has the conversation open, and per stream connection"
    ),
    "StreamSocketFunction": Work(0, 0, 30, "per stream connection ($connect, $disconnect), not per message"),
}

# The relay's own AWS calls, warm (tests/integration/test_aws_calls.py counts them).
WRITES_PER_MESSAGE = 3  # the client's rate limit bucket; the idempotency record, put then updated
WRITES_PER_RESPONSE = 2  # the responses log's put and the delivery's attempt record (each under 1 KB: one unit)
WARM_READS_PER_RESPONSE = 1  # the responses log's look for stream connections: a strongly consistent query, 1 unit
COLD_READS_PER_MESSAGE = 1  # the client, when not cached
COLD_READS_PER_RESPONSE = 2  # the conversation (bot response) and the client (delivery), when not cached
SQS_REQUESTS_PER_RESPONSE = 3  # per subscribed queue: send (by SNS), receive, delete
LOG_KB_PER_INVOCATION = 1.0  # Powertools lines, EMF metrics, Lambda's REPORT
LOG_KB_PER_API_REQUEST = 0.3  # the access log line
BODY_KB = 1.0

# us-east-1, on demand, before free tiers (each service's pricing page).
PRICE_API_REQUEST = 1.00e-6
PRICE_LAMBDA_REQUEST = 0.20e-6
PRICE_LAMBDA_GB_SECOND_ARM = 0.0000133334
PRICE_WRITE_UNIT = 0.625e-6
PRICE_READ_UNIT = 0.125e-6
PRICE_SNS_FIFO_PUBLISH = 0.30e-6
PRICE_SNS_FIFO_PUBLISH_GB = 0.017
PRICE_SNS_FIFO_TO_SQS = 0.01e-6
PRICE_SNS_FIFO_TO_SQS_GB = 0.001
PRICE_SQS_FIFO_REQUEST = 0.50e-6
PRICE_LOGS_GB = 0.50
PRICE_XRAY_TRACE = 5.00e-6
PRICE_SECRET_MONTH = 0.40
PRICE_ALARM_METRIC_MONTH = 0.10
PRICE_DASHBOARD_MONTH = 3.00
PRICE_CUSTOM_METRIC_MONTH = 0.30
MILLION = 1_000_000
TIMES = "\u00d7"  # the multiplication sign, as the docs write products


def _money(dollars: float) -> str:
    return f"${dollars:,.2f}"


def _count(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _memory_gb(template: dict[str, Any], function: dict[str, Any]) -> float:
    globals_ = template.get("Globals", {}).get("Function", {})
    return int(function["Properties"].get("MemorySize", globals_.get("MemorySize", 128))) / 1024


def _work(template: dict[str, Any]) -> dict[str, Work]:
    functions = set(_functions(template))
    if missing := sorted(functions - set(WORK)):
        raise ValueError(
            f"no cost assumption for {', '.join(missing)}: add what it does per message to tools/docs.py WORK"
        )
    if gone := sorted(set(WORK) - functions):
        raise ValueError(f"tools/docs.py WORK names functions the template no longer has: {', '.join(gone)}")
    return WORK


def _invocations(work: Work) -> int:
    return work.per_message + RESPONSES_PER_MESSAGE * work.per_response


def _per(work: Work) -> str:
    """What the invocations are counted by: none of a function not invoked per message (its `why` says when)."""
    if work.per_message:
        return " (per message)"
    return " (one per response)" if work.per_response else ""


def _has_http_route(function: dict[str, Any]) -> bool:
    return any(event["Type"] == "HttpApi" for event in function["Properties"].get("Events", {}).values())


def _sqs_sources(template: dict[str, Any]) -> int:
    return sum(
        event["Type"] == "SQS"
        for function in _functions(template).values()
        for event in function["Properties"].get("Events", {}).values()
    )


def costs_region(template: dict[str, Any]) -> str:
    n = RESPONSES_PER_MESSAGE
    work = _work(template)
    functions = _functions(template)
    topics = resources_of_type(template, "AWS::SNS::Topic")
    subscriptions = [
        sub
        for sub in resources_of_type(template, "AWS::SNS::Subscription").values()
        if any(references(sub["Properties"]["TopicArn"], topic) for topic in topics)
    ]
    # Per client message; a million messages cost a million times as much.
    api = sum(_invocations(work[name]) for name, function in functions.items() if _has_http_route(function))
    invocations = sum(_invocations(w) for w in work.values())
    memory = {name: _memory_gb(template, functions[name]) for name in work}
    gb_seconds = sum(memory[name] * _invocations(w) * w.billed_ms / 1000 for name, w in work.items())
    seconds = " + ".join(f"{_invocations(w)} {TIMES} {w.billed_ms / 1000:g} s" for w in work.values())
    if len(set(memory.values())) == 1:
        compute = f"{next(iter(memory.values())):g} GB {TIMES} ({seconds})"
    else:
        compute = " + ".join(
            f"{memory[name]:g} GB {TIMES} {_invocations(w)} {TIMES} {w.billed_ms / 1000:g} s"
            for name, w in work.items()
        )
    writes = WRITES_PER_MESSAGE + n * WRITES_PER_RESPONSE
    warm_reads = n * WARM_READS_PER_RESPONSE
    reads = warm_reads + (COLD_READS_PER_MESSAGE + n * COLD_READS_PER_RESPONSE) / 2  # eventually consistent: half
    deliveries = n * len(subscriptions)
    sqs = SQS_REQUESTS_PER_RESPONSE * deliveries
    log_kb = invocations * LOG_KB_PER_INVOCATION + api * LOG_KB_PER_API_REQUEST  # a million KB is a GB
    rows: list[tuple[str, str, str, str, float]] = [
        ("API Gateway HTTP API requests", f"{api}", f"{api} M requests", "$1.00 per million", api * PRICE_API_REQUEST),
        (
            "Lambda requests",
            " + ".join(f"{_invocations(w)} {name.removesuffix('Function')}" for name, w in work.items()),
            f"{invocations} M invocations",
            "$0.20 per million",
            invocations * PRICE_LAMBDA_REQUEST,
        ),
        (
            "Lambda compute (arm64)",
            f"{compute} = {_count(gb_seconds)} GB-s",
            f"{gb_seconds * MILLION:,.0f} GB-s",
            "$0.0000133334 per GB-s",
            gb_seconds * PRICE_LAMBDA_GB_SECOND_ARM,
        ),
        (
            "DynamoDB writes (on-demand)",
            f"{writes}: the client's rate limit bucket; the idempotency record, put then updated; per response its"
            " put in the responses log and its delivery's attempt record (an invocation's records in one batch write)",
            f"{writes} M write units",
            "$0.625 per million",
            writes * PRICE_WRITE_UNIT,
        ),
        (
            "DynamoDB reads (on-demand)",
            f"{warm_reads} warm: per response, the responses log's look for the conversation's stream connections (a"
            f" strongly consistent query); at most {_count(reads)} read units when nothing is cached (1 + 2N"
            " eventually consistent reads more)",
            f"≤ {_count(reads)} M read units",
            "$0.125 per million",
            reads * PRICE_READ_UNIT,
        ),
        (
            "SNS FIFO publish",
            f"{n} publishes, {n * BODY_KB:g} KB",
            f"{n} M requests, {n * BODY_KB:g} GB",
            "$0.30 per million + $0.017 per GB",
            n * (PRICE_SNS_FIFO_PUBLISH + BODY_KB * PRICE_SNS_FIFO_PUBLISH_GB / MILLION),
        ),
        (
            f"SNS FIFO delivery to the relay's {len(subscriptions)} queues",
            f"{deliveries}",
            f"{deliveries} M messages, {deliveries * BODY_KB:g} GB",
            "$0.01 per million + $0.001 per GB",
            deliveries * (PRICE_SNS_FIFO_TO_SQS + BODY_KB * PRICE_SNS_FIFO_TO_SQS_GB / MILLION),
        ),
        (
            "SQS FIFO requests",
            f"{sqs}: per response and queue, a send (by SNS), a receive and a delete",
            f"{sqs} M requests",
            "$0.50 per million",
            sqs * PRICE_SQS_FIFO_REQUEST,
        ),
        (
            "CloudWatch Logs ingestion",
            f"{_count(log_kb)} KB: ≈{LOG_KB_PER_INVOCATION:g} KB per invocation (Powertools lines, EMF metrics,"
            f" Lambda's REPORT) + ≈{LOG_KB_PER_API_REQUEST:g} KB of access log per API request",
            f"{_count(log_kb)} GB",
            "$0.50 per GB",
            log_kb * PRICE_LOGS_GB / MILLION,
        ),
    ]
    total = sum(row[4] for row in rows) * MILLION
    cells = [(*row[:4], _money(row[4] * MILLION)) for row in rows]
    cells += [
        (
            "Secrets Manager API calls",
            "≈0 (read once per container, then every 5 minutes)",
            "—",
            "$0.05 per 10,000",
            "≈$0",
        ),
        ("**total**", "", "", "", f"**≈ {_money(total)}**"),
        (
            "X-Ray traces (`Tracing: Active`)",
            f"at most one per invocation: {invocations}",
            f"≤ {invocations} M traces",
            "$5.00 per million recorded",
            f"≤ {_money(invocations * PRICE_XRAY_TRACE * MILLION)}",
        ),
    ]
    table = _table(("component", "per message", "per million messages", "price (us-east-1)", "cost"), cells)
    table = table.replace("| --- | --- | --- | --- | --- |", "| --- | --- | --- | --- | ---: |", 1)
    assumptions = "".join(
        f"  - `{name}`: {_invocations(w)} invocation{'s' if _invocations(w) != 1 else ''}"
        f"{_per(w)}, {memory[name] * 1024:g} MB,"
        f" billed {w.billed_ms} ms each: {w.why};\n"
        for name, w in work.items()
    )
    return (
        f"- every message gets **N = {n}** bot responses, each delivered to one response URL and recorded in the"
        " responses log;\n"
        f"- the functions, with the template's memory:\n{assumptions}"
        f"- bodies under {BODY_KB:g} KB; warm containers (the client, bot token and conversation come from the"
        " cache, as `tests/integration/test_aws_calls.py` counts); responses read by webhook, not by polling.\n\n"
        + table
        + "\n"
        + attempt_costs()
        + "\n"
        + fixed_costs(template)
    )


def attempt_costs() -> str:
    """What one delivery attempt costs in AWS calls (tests/integration/test_aws_calls.py counts them)."""
    per_million = f"${PRICE_WRITE_UNIT * MILLION:g} per million"
    return (
        "What an attempt costs on top of its invocation: a **delivered** one, its record in the attempt log: one"
        f" write unit ({per_million}; two when it holds much of the answer's first KB, as an error page fills it),"
        " an invocation's records in one `BatchWriteItem`, and no other AWS call (a delivery after failed"
        " attempts reads their count first, half a read unit). A **failed** one also writes its count (one"
        " more write unit) and sets when its message comes back (an SQS request). A response skipped while its"
        " endpoint is off (a 410, a disabled client) writes a record too, so that `POST /client/recover` finds"
        " it; one held by an open breaker writes nothing.\n"
    )


def fixed_costs(template: dict[str, Any]) -> str:
    secrets = len(resources_of_type(template, "AWS::SecretsManager::Secret"))
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    metrics = sum(alarm_metrics(alarm) for alarm in alarms.values())
    dashboards = len(resources_of_type(template, "AWS::CloudWatch::Dashboard"))
    queues = _sqs_sources(template)
    return (
        f"Fixed monthly costs, whatever the traffic: {secrets} secrets {TIMES} {_money(PRICE_SECRET_MONTH)} ="
        f" {_money(secrets * PRICE_SECRET_MONTH)}; {len(alarms)} alarms reading {metrics} metrics (CloudWatch bills"
        f" each metric an alarm evaluates) {TIMES} {_money(PRICE_ALARM_METRIC_MONTH)} ="
        f" {_money(metrics * PRICE_ALARM_METRIC_MONTH)}; {dashboards} dashboard"
        f"{'s' if dashboards != 1 else ''} {TIMES} {_money(PRICE_DASHBOARD_MONTH)} (an account's first three are free);"
        f" the custom metrics the functions emit (namespace `MessagingRelay`, one per metric name and service)"
        f" {_money(PRICE_CUSTOM_METRIC_MONTH)} each; Lambda's polling of the {queues} queues it reads, while they"
        " are empty, a few hundred thousand SQS requests each (about $0.30); table storage and point-in-time"
        " recovery at $0.25 and $0.20 per GB-month; log storage at $0.03 per GB-month for the days kept.\n"
    )


REGIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "stack-name": stack_name_region,
    "parameters": parameters_region,
    "outputs": outputs_region,
    "secrets": secrets_region,
    "alarms": alarms_region,
    "retention": retention_region,
    "costs": costs_region,
}


def pages() -> list[Path]:
    """The pages `make docs` keeps in step with the template: README.md and every page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def render(page: str, template: dict[str, Any]) -> str:
    """A page with each of its marked regions rewritten from the template; a region it does not know is an error."""
    if unknown := sorted({match["name"] for match in REGION.finditer(page)} - set(REGIONS)):
        raise ValueError(f"regions with no generator: {', '.join(unknown)}")
    return REGION.sub(lambda match: match[1] + REGIONS[match["name"]](template) + match[4], page)


def render_pages(texts: dict[Path, str], template: dict[str, Any]) -> dict[Path, str]:
    """Every page rendered; each region is in exactly one of them."""
    where: dict[str, list[str]] = {name: [] for name in REGIONS}
    for path, text in texts.items():
        for match in REGION.finditer(text):
            where.setdefault(match["name"], []).append(path.name)
    if missing := sorted(name for name, found in where.items() if not found):
        raise ValueError(f"no page has a region for: {', '.join(missing)}")
    if twice := sorted(f"{name} ({', '.join(found)})" for name, found in where.items() if len(found) > 1):
        raise ValueError(f"regions in more than one place: {'; '.join(twice)}")
    return {path: render(text, template) for path, text in texts.items()}


def main() -> None:
    texts = {path: path.read_text() for path in pages()}
    for path, text in render_pages(texts, load()).items():
        if text != texts[path]:
            path.write_text(text)
            print(f"rewrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
