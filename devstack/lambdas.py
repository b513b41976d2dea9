"""Runs a template function's handler in-process, as Lambda would: one module load, many invocations."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol
from unittest import mock
from urllib.parse import parse_qsl

import boto3
import boto3.session
import botocore.handlers
import botocore.hooks
import botocore.loaders
import botocore.session

from devstack.provision import ACCOUNT, REGION, FunctionSpec


@dataclass
class LambdaContext:
    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = field(default=0.0)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        self.function_version = "$LATEST"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Invocable(Protocol):
    """A function that takes events: in-process (LocalFunction) or in containers (runtime.Function)."""

    spec: FunctionSpec

    def invoke(self, event: dict[str, Any]) -> Any: ...


# Each function's own boto3 session (its role) is shown to these before its handler is imported: tests record the
# AWS calls its clients make and check them against the function's policy.
session_observers: list[Callable[[FunctionSpec, boto3.Session], None]] = []
# The function whose handler is running, for calls through clients it creates per invocation from boto3's default.
running_function: ContextVar[FunctionSpec | None] = ContextVar("running_function", default=None)
_importing = threading.Lock()
_environment_lock = threading.Lock()
_environments: list[dict[str, str]] = []
_original_environment: dict[str, str] = {}


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """`variables` in os.environ while the block runs. Invocations of several functions may overlap (a long poll
    waits while the responses log records): each one's variables stay set until the last of them ends, and
    then os.environ is as it was."""
    with _environment_lock:
        if not _environments:
            _original_environment.clear()
            _original_environment.update(os.environ)
        _environments.append(variables)
        os.environ.update(variables)
    try:
        yield
    finally:
        with _environment_lock:
            _environments.remove(variables)
            if not _environments:
                os.environ.clear()
                os.environ.update(_original_environment)


class _ServiceData(botocore.loaders.Loader):  # type: ignore[misc]  # botocore has no type hints
    """botocore's service models and endpoints, parsed once and read by every function's session. They are
    read-only data, and parsing them again for each emulated container was most of a test's set-up."""

    @property
    def search_paths(self) -> list[str]:
        # boto3 appends its data path to each new session's loader: it is here already, so that goes to a copy.
        return list(self._search_paths)


_service_data = _ServiceData(
    extra_search_paths=[
        botocore.loaders.Loader.CUSTOMER_DATA_PATH,
        botocore.loaders.Loader.BUILTIN_DATA_PATH,
        os.path.join(os.path.dirname(boto3.__file__), "data"),
    ],
    include_default_search_paths=False,
)


_builtin_handlers: list[Any] = []
_builtin_events = botocore.hooks.HierarchicalEmitter()


def _events_with_builtin_handlers() -> botocore.hooks.HierarchicalEmitter:
    """A copy of an emitter holding botocore's built-in handlers (with those moto and the tests add to them): each
    new session registered them all again, most of the time a session took to make."""
    if _builtin_handlers != botocore.handlers.BUILTIN_HANDLERS:
        global _builtin_events
        _builtin_events = botocore.hooks.HierarchicalEmitter()
        botocore.session.Session(event_hooks=_builtin_events)  # registers them into it
        _builtin_handlers[:] = botocore.handlers.BUILTIN_HANDLERS
    return copy.copy(_builtin_events)


def session_sharing_service_data(**options: Any) -> boto3.Session:
    """A new boto3 session (its own credentials, clients and event hooks; `options` as boto3.Session takes them)
    reading the service models parsed once."""
    core = botocore.session.Session(event_hooks=_events_with_builtin_handlers(), include_builtin_handlers=False)
    core.register_component("data_loader", _service_data)
    return boto3.session.Session(botocore_session=core, **{"region_name": REGION, **options})


class LocalFunction:
    """A function's handler, imported with the function's environment the way a fresh container imports it."""

    def __init__(self, spec: FunctionSpec, extra_environment: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.environment = {
            **spec.environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **(extra_environment or {}),
        }
        module_name, _, function_name = spec.handler.rpartition(".")
        path = spec.code_dir / f"{module_name}.py"
        module_spec = importlib.util.spec_from_file_location(f"{spec.name}_{module_name}", path)
        assert module_spec and module_spec.loader
        self.module = importlib.util.module_from_spec(module_spec)
        self.session = session_sharing_service_data()
        for observe in session_observers:
            observe(spec, self.session)
        # The clients the handler creates at import (`boto3.client(...)`) come from the function's own session.
        # The environment as an invocation sets it: another function's invocation ending meanwhile (a test's other
        # thread) leaves it set, where restoring os.environ there had taken it away from the import.
        with (
            _importing,
            _environment(self.environment),
            mock.patch.object(boto3, "DEFAULT_SESSION", self.session),
        ):
            sys.modules[module_spec.name] = self.module
            module_spec.loader.exec_module(self.module)
        self.handler: Callable[[dict[str, Any], Any], Any] = getattr(self.module, function_name)

    def invoke(self, event: dict[str, Any]) -> Any:
        running = running_function.set(self.spec)
        try:
            with _environment(self.environment):
                return self.handler(event, LambdaContext(self.spec.name, self.spec.timeout_seconds))
        finally:
            running_function.reset(running)


def http_event(
    method: str,
    route: str,
    path: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    query: str = "",
) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0, as the route would receive it.

    As the HTTP API does: header names lower-cased, repeated headers and query parameters joined
    with commas, cookies moved from their header into `cookies`.
    """
    try:
        text, encoded = body.decode(), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        if name.lower() == "cookie":
            cookies.extend(cookie.strip() for cookie in value.split(";") if cookie.strip())
        else:
            joined[name.lower()] = f"{joined[name.lower()]},{value}" if name.lower() in joined else value
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": joined,
        "queryStringParameters": parameters or None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": "127.0.0.1",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {route}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "pathParameters": path_parameters(route, path) or None,
        "body": text or None,
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    return event


def websocket_event(
    route_key: str, connection_id: str, query: Mapping[str, str] | None = None, body: str | None = None
) -> dict[str, Any]:
    """An API Gateway WebSocket API event (Lambda proxy) of `route_key`: $connect (with the URL's query
    parameters), $disconnect, or a message routed to $default (with its text)."""
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE")
    now = time.time()
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route_key,
            "eventType": event_type,
            "connectionId": connection_id,
            "requestId": str(uuid.uuid4()),
            "apiId": "local",
            "stage": "live",
            "domainName": "127.0.0.1",
            "connectedAt": int(now * 1000),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "isBase64Encoded": False,
    }
    if route_key == "$connect":
        event["queryStringParameters"] = dict(query) if query else None
    if event_type == "MESSAGE":
        event["body"] = body
    return event


def path_parameters(route: str, path: str) -> dict[str, str] | None:
    """The route's {name} segments filled from `path`, or None when the path does not match the route."""
    pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route)) + "$"
    match = re.match(pattern, path)
    return match.groupdict() if match else None


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping builds it from received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {
                    name: {
                        "stringValue": attribute.get("StringValue"),
                        "binaryValue": attribute.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": attribute["DataType"],
                    }
                    for name, attribute in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


def api_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a handler's payload format 2.0 result, as the HTTP API reads it.

    A result without `statusCode` is taken as a JSON body with status 200; a malformed one raises.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return int(result["statusCode"]), {name: str(value) for name, value in (result.get("headers") or {}).items()}, raw


def json_body(result: dict[str, Any]) -> Any:
    return json.loads(api_response(result)[2])
