"""Creates template.yaml's tables, secrets, queues, topic and subscription on moto (or any AWS endpoint)."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from devstack.moto_fidelity import behave_as_aws
from devstack.template import ROOT, Resolver, load, parameter_values, resources_of_type

STACK_NAME = "relay-dev"
REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class FunctionSpec:
    """A function of the template as it would run in Lambda: code, handler and resolved environment."""

    name: str
    code_dir: Path
    handler: str
    timeout_seconds: int
    environment: dict[str, str]
    http_routes: list[tuple[str, str]]
    queue_url: str | None
    batch_size: int
    maximum_concurrency: int | None = None
    """Its SQS event source's ScalingConfig.MaximumConcurrency: the most invocations the mapping makes at once."""
    policies: Any = ()  # the template's Policies, resolved: what tests check the function's AWS calls against


@dataclass(frozen=True)
class Stack:
    resolver: Resolver
    functions: dict[str, FunctionSpec]
    secret_values: dict[str, str]

    def ref(self, logical_id: str) -> str:
        return self.resolver.refs[logical_id]


def provision(
    parameters: dict[str, str], secret_values: dict[str, str] | None = None, session: boto3.Session | None = None
) -> Stack:
    """Create every stateful resource of the template; return where each one is and how each function is set up."""
    behave_as_aws()
    template = load()
    session = session or boto3.Session(region_name=REGION)
    resolver = Resolver(
        template,
        parameter_values(template, parameters),
        {
            "AWS::StackName": STACK_NAME,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
    )
    values = dict(secret_values or {})
    _tables(template, resolver, session.client("dynamodb"))
    _secrets(template, resolver, session.client("secretsmanager"), values)
    _queues(template, resolver, session.client("sqs"))
    _topics(template, resolver, session.client("sns"))
    _websocket_apis(template, resolver, session.client("apigatewayv2"))
    functions = {
        name: _function(template, resolver, name, spec)
        for name, spec in resources_of_type(template, "AWS::Serverless::Function").items()
    }
    return Stack(resolver, functions, values)


def _tables(template: dict[str, Any], resolver: Resolver, dynamodb: Any) -> None:
    for name, spec in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props = resolver(spec["Properties"])
        table = f"{STACK_NAME}-{name}"
        description = create_table(dynamodb, table, props)
        resolver.refs[name] = table
        resolver.attributes[name] = {"Arn": description["TableArn"]}


def create_table(dynamodb: Any, table: str, props: dict[str, Any]) -> dict[str, Any]:
    """The table as a template's AWS::DynamoDB::Table properties describe it (keys, billing, indexes, TTL)."""
    indexes = {"GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]} if "GlobalSecondaryIndexes" in props else {}
    description: dict[str, Any] = dynamodb.create_table(
        TableName=table,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"],
        **indexes,
    )["TableDescription"]
    if ttl := props.get("TimeToLiveSpecification"):
        dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
    return description


def _secrets(template: dict[str, Any], resolver: Resolver, client: Any, values: dict[str, str]) -> None:
    for name, spec in resources_of_type(template, "AWS::SecretsManager::Secret").items():
        props = resolver(spec["Properties"])
        generate = props.get("GenerateSecretString", {})
        alphabet = string.ascii_letters + string.digits
        value = values.setdefault(
            name, "".join(secrets.choice(alphabet) for _ in range(int(generate.get("PasswordLength", 32))))
        )
        arn = client.create_secret(Name=props.get("Name", f"{STACK_NAME}/{name}"), SecretString=value)["ARN"]
        resolver.refs[name] = arn


def _queues(template: dict[str, Any], resolver: Resolver, sqs: Any) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    # A dead-letter queue before the queue whose redrive policy names it.
    for name, spec in sorted(queues.items(), key=lambda item: "RedrivePolicy" in item[1]["Properties"]):
        props = resolver(spec["Properties"])
        queue_name = props.pop("QueueName", f"{STACK_NAME}-{name}" + (".fifo" if props.get("FifoQueue") else ""))
        attributes = {
            key: json.dumps(value)
            if isinstance(value, dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for key, value in props.items()
            if key in _QUEUE_ATTRIBUTES
        }
        url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        resolver.refs[name] = url
        resolver.attributes[name] = {"Arn": arn, "QueueName": queue_name, "QueueUrl": url}


_QUEUE_ATTRIBUTES = {
    "FifoQueue",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "RedrivePolicy",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "ContentBasedDeduplication",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
}


def _topics(template: dict[str, Any], resolver: Resolver, sns: Any) -> None:
    for name, spec in resources_of_type(template, "AWS::SNS::Topic").items():
        props = resolver(spec["Properties"])
        attributes = {
            key: str(props[key]).lower() for key in ("FifoTopic", "ContentBasedDeduplication") if key in props
        }
        resolver.refs[name] = sns.create_topic(Name=props["TopicName"], Attributes=attributes)["TopicArn"]
    for spec in resources_of_type(template, "AWS::SNS::Subscription").values():
        props = resolver(spec["Properties"])
        attributes = {"RawMessageDelivery": str(props.get("RawMessageDelivery", False)).lower()}
        if "FilterPolicy" in props:
            attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
        sns.subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"], Attributes=attributes
        )


def _websocket_apis(template: dict[str, Any], resolver: Resolver, apigatewayv2: Any) -> None:
    """The WebSocket APIs (their id and endpoint; the routes and stage are the local stack's own stream server)."""
    for name, spec in resources_of_type(template, "AWS::ApiGatewayV2::Api").items():
        props = resolver(spec["Properties"])
        api = apigatewayv2.create_api(
            Name=props["Name"],
            ProtocolType=props["ProtocolType"],
            RouteSelectionExpression=props["RouteSelectionExpression"],
        )
        endpoint = api["ApiEndpoint"].replace("https://", "wss://", 1)  # moto's, for a WebSocket API as AWS's
        resolver.refs[name] = api["ApiId"]
        resolver.attributes[name] = {"ApiId": api["ApiId"], "ApiEndpoint": endpoint}


def _function(template: dict[str, Any], resolver: Resolver, name: str, spec: dict[str, Any]) -> FunctionSpec:
    globals_ = template.get("Globals", {}).get("Function", {})
    props = {**globals_, **spec["Properties"]}
    environment = {
        **resolver(globals_.get("Environment", {}).get("Variables", {})),
        **resolver(spec["Properties"].get("Environment", {}).get("Variables", {})),
    }
    routes, queue_url, batch_size, maximum_concurrency = [], None, 10, None
    for event in spec["Properties"].get("Events", {}).values():
        event_props = event["Properties"]
        if event["Type"] == "HttpApi":
            routes.append((event_props["Method"].upper(), event_props["Path"]))
        elif event["Type"] == "SQS":
            queue_arn = resolver(event_props["Queue"])
            queue_url = next(
                attrs["QueueUrl"] for attrs in resolver.attributes.values() if attrs.get("Arn") == queue_arn
            )
            batch_size = int(event_props.get("BatchSize", 10))
            if "MaximumConcurrency" in (scaling := event_props.get("ScalingConfig", {})):
                maximum_concurrency = int(resolver(scaling["MaximumConcurrency"]))
    return FunctionSpec(
        name=name,
        code_dir=ROOT / props["CodeUri"],
        handler=props["Handler"],
        timeout_seconds=int(props.get("Timeout", 3)),
        environment={key: str(value) for key, value in environment.items()},
        http_routes=routes,
        queue_url=queue_url,
        batch_size=batch_size,
        maximum_concurrency=maximum_concurrency,
        policies=resolver(spec["Properties"].get("Policies", [])),
    )
