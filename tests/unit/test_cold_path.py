"""What a cold start loads: each handler imported in a fresh interpreter, as Lambda imports it.

Nothing the first event does not need: no X-Ray SDK unless tracing is on, no pydantic-settings, no AWS
client that only a failure needs.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.template import ROOT

FUNCTIONS = {
    "InboundFunction": "inbound",
    "BotResponseFunction": "bot_response",
    "DeliveryFunction": "delivery",
    "StreamSocketFunction": "stream_socket",
    "StreamFunction": "stream",
}
ENVIRONMENT = json.loads((ROOT / "events" / "env.json").read_text())
NOT_ON_THE_COLD_PATH = ["aws_xray_sdk", "pydantic_settings"]

PROBE = """
import json, sys
import boto3
clients = []
boto3.setup_default_session()
boto3.DEFAULT_SESSION.events.register("creating-client-class", lambda event_name, **_: clients.append(event_name))
sys.path.insert(0, sys.argv[1])
import app
xray = sys.modules.get("aws_xray_sdk.core.patcher")
print(json.dumps({
    "modules": sorted(sys.modules),
    "patched": sorted(xray._PATCHED_MODULES) if xray else [],
    "clients": sorted(event.rpartition(".")[2] for event in clients),
}))
"""


def lambda_environment(function: str, code: Path, layer: Path = ROOT / "layers" / "relay") -> dict[str, str]:
    """The environment Lambda gives the function whose handler is in `code`, with `layer` on the path."""
    return {
        "PATH": os.environ["PATH"],
        **ENVIRONMENT[function],
        "BOT_WEBHOOK_URL": "https://bot.example/webhook",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "LAMBDA_TASK_ROOT": str(code),
        "PYTHONPATH": str(layer),
    }


def cold_start(function: str, prelude: str = "", **environment: str) -> dict[str, list[str]]:
    code = ROOT / "functions" / FUNCTIONS[function]
    env = {**lambda_environment(function, code), **environment}
    return _started(str(code), prelude + PROBE, tuple(sorted(env.items())))


@functools.cache
def _started(code: str, program: str, environment: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    """A cold start's modules and clients: the same start, asked by several tests, is made once (each takes a
    second or more of a core)."""
    done = subprocess.run(
        [sys.executable, "-c", program, code],
        env=dict(environment),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout)


def loaded(modules: list[str], package: str) -> bool:
    return any(module == package or module.startswith(f"{package}.") for module in modules)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_cold_start_without_tracing_loads_neither_the_xray_sdk_nor_pydantic_settings(function: str) -> None:
    modules = cold_start(function, POWERTOOLS_TRACE_DISABLED="true")["modules"]

    assert [package for package in NOT_ON_THE_COLD_PATH if loaded(modules, package)] == []


@pytest.mark.parametrize("function", ["InboundFunction", "BotResponseFunction", "StreamSocketFunction"])
def test_an_api_function_loads_no_batch_processing(function: str) -> None:
    """Only the queue consumers process batches; the API functions' cold starts do not pay for it."""
    modules = cold_start(function)["modules"]

    assert not loaded(modules, "aws_lambda_powertools.utilities.batch")


def test_a_cold_start_makes_only_the_clients_a_first_event_uses() -> None:
    clients = {function: cold_start(function)["clients"] for function in FUNCTIONS}

    assert clients == {
        "InboundFunction": ["dynamodb", "secrets-manager"],
        "BotResponseFunction": ["dynamodb", "secrets-manager", "sns"],
        "DeliveryFunction": ["dynamodb"],  # the queue's client comes with the first failed delivery
        "StreamSocketFunction": ["dynamodb", "secrets-manager", "sqs"],
        # The queue's client comes with the first connection still connecting.
        "StreamFunction": ["apigatewaymanagementapi", "dynamodb", "secrets-manager"],
    }


def test_with_tracing_on_aws_calls_are_traced_and_http_calls_are_not() -> None:
    """The bot's and the webhooks' URLs can carry secrets: only botocore is patched, never urllib3 or httplib."""
    started = cold_start("InboundFunction", POWERTOOLS_TRACE_DISABLED="false")

    assert started["patched"] == ["botocore"]


def test_tracing_on_without_the_sdk_in_any_layer_fails_at_init_saying_what_to_do() -> None:
    without_sdk = "import sys; sys.modules['aws_xray_sdk'] = None\n"  # as in Lambda with only the relay's layer

    with pytest.raises(RuntimeError, match="in none of the function's layers: set the stack's XRaySdkLayerArn"):
        cold_start("BotResponseFunction", without_sdk, POWERTOOLS_TRACE_DISABLED="false")
