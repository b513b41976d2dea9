"""A container's process: `python -m devstack.container <fd>`, started by devstack.runtime.

It takes the function's spec over the connection, imports the handler, says it is ready, and then
runs one invocation per event received until the connection closes.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
import warnings
from multiprocessing.connection import Connection

from devstack.console import FunctionOutput
from devstack.lambdas import LocalFunction
from devstack.provision import FunctionSpec


def label(spec: FunctionSpec) -> str:
    """The function's service name, as its log lines carry it."""
    return spec.environment.get("POWERTOOLS_SERVICE_NAME", spec.name)


def main(connection: Connection) -> None:
    spec: FunctionSpec = connection.recv()
    # Powertools warns on every invocation that records no metric (a refused request, say): noise while you watch.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    assert sys.__stdout__ is not None  # started by the stack with its stdout
    sys.stdout = sys.stderr = FunctionOutput(label(spec), sys.__stdout__)
    try:
        function = LocalFunction(spec)
    except Exception as error:
        traceback.print_exc()
        connection.send((False, f"init failed: {type(error).__name__}: {error}"))
        return
    connection.send((True, None))
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
            connection.send((False, f"{type(error).__name__}: {error}"))
        else:
            connection.send((True, result))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the stack went while we answered
        main(Connection(int(sys.argv[1])))
