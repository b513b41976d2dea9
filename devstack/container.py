"""A container's process (`serve`), forked by devstack.runtime from a fork server that has imported this module.

It takes the function's spec over the connection, imports the handler, says it is ready, and then
runs one invocation per event received until the connection closes. Each answer also names the queues and topics
the invocation sent messages to, so that the stack wakes the pollers of those queues, and only those.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
import warnings
from multiprocessing.connection import Connection
from typing import Any

# Powertools' logger and metrics and pydantic, as botocore here: what every handler imports, imported once by the
# fork server the containers are forked from, so each starts with them in memory (the e2e tests, which start
# about thirty containers, took 13 s less CPU).
import aws_lambda_powertools.logging
import aws_lambda_powertools.metrics  # noqa: F401
import botocore.handlers
import pydantic  # noqa: F401

from devstack.console import FunctionOutput
from devstack.lambdas import LocalFunction
from devstack.provision import FunctionSpec
from devstack.template import ROOT

_SENDS = {"sqs": ("SendMessage", "SendMessageBatch"), "sns": ("Publish", "PublishBatch")}
"""The calls that put messages in a queue: directly, or through a topic's subscriptions."""


def record_sends(sent: set[str]) -> None:
    """Add to `sent` the queue URL or topic ARN of every send this process makes from now on: through the clients of
    every session made from now on (the function's own, and boto3's default one that clients made on first use
    come from), since botocore registers its built-in handlers, these among them, in each session it makes."""

    def remember(params: dict[str, Any], **_: Any) -> None:
        if target := params.get("QueueUrl") or params.get("TopicArn"):
            sent.add(target)

    botocore.handlers.BUILTIN_HANDLERS.extend(
        (f"before-parameter-build.{service}.{operation}", remember)
        for service, operations in _SENDS.items()
        for operation in operations
    )


def label(spec: FunctionSpec) -> str:
    """The function's service name, as its log lines carry it."""
    return spec.environment.get("POWERTOOLS_SERVICE_NAME", spec.name)


def main(connection: Connection) -> None:
    spec: FunctionSpec = connection.recv()
    # Powertools warns on every invocation that records no metric (a refused request, say): noise while you watch.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    assert sys.__stdout__ is not None  # started by the stack with its stdout
    sys.stdout = sys.stderr = FunctionOutput(label(spec), sys.__stdout__)
    sent: set[str] = set()
    record_sends(sent)
    try:
        function = LocalFunction(spec)
    except Exception as error:
        traceback.print_exc()
        connection.send((False, f"init failed: {type(error).__name__}: {error}", []))
        return
    connection.send((True, None, []))
    sent.clear()  # nothing wakes on the import's sends
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError):  # the stack closed the connection, or is gone
            return
        try:
            result = function.invoke(event)
        except Exception as error:
            # Lambda prints the unhandled error to the function's log and reports it to the caller.
            traceback.print_exc()
            ok, value = False, f"{type(error).__name__}: {error}"
        else:
            ok, value = True, result
        named = sorted(sent)
        sent.difference_update(named)  # a send landing meanwhile (a thread the handler left) goes with the next
        connection.send((ok, value, named))


def serve(connection: Connection, environment: dict[str, str]) -> None:
    """The container's process, forked from the fork server: the function's environment and the repository as
    its working directory, as a container started afresh had them."""
    # Its own process group: Ctrl-C in the terminal reaches the stack, which stops its containers.
    os.setpgid(0, 0)
    os.chdir(ROOT)
    os.environ.clear()
    os.environ.update(environment)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the stack went while we answered
        main(connection)
