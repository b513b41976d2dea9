"""Lambda's execution environments on this machine: each function's handler in processes of its own.

A container is a worker process that imports the handler once, with the function's environment,
and then takes one invocation at a time, as a Lambda execution environment does. A function
keeps its idle containers and starts another only when all are busy, up to a limit.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import traceback
import warnings
from multiprocessing.connection import Connection
from typing import Any

from devstack.console import FunctionOutput
from devstack.provision import FunctionSpec

# Spawned, not forked: the parent runs threads (moto, the API), which a fork would copy mid-step.
_context = multiprocessing.get_context("spawn")
_INIT_TIMEOUT_SECONDS = 60


class FunctionError(Exception):
    """The invocation failed as Lambda reports a function error: the handler raised, timed out or crashed."""


class Container:
    """One execution environment: a process that has imported the function's handler."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self._connection, child = _context.Pipe()
        self._process = _context.Process(target=_run, args=(spec, child), name=spec.name, daemon=True)
        self._process.start()
        child.close()
        self._ready = False

    def wait_ready(self) -> None:
        """Block until the handler is imported; its init error, if any, is raised here."""
        if not self._ready:
            self._receive(_INIT_TIMEOUT_SECONDS, "init")
            self._ready = True

    def invoke(self, event: dict[str, Any]) -> Any:
        self.wait_ready()
        try:
            self._connection.send(event)
        except OSError:
            self.stop()
            raise FunctionError(f"{self.spec.name}: the process had exited") from None
        # A little over the function's timeout: the handler's own time guard gets to act first.
        return self._receive(self.spec.timeout_seconds + 1, "invocation")

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def stop(self) -> None:
        self._connection.close()
        self._process.terminate()
        self._process.join(2)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def _receive(self, timeout: float, step: str) -> Any:
        try:
            if not self._connection.poll(timeout):
                self.stop()
                raise FunctionError(f"{self.spec.name}: {step} timed out after {timeout:.0f} s; process stopped")
            ok, value = self._connection.recv()
        except (EOFError, OSError):
            self.stop()
            raise FunctionError(f"{self.spec.name}: the process exited during {step}") from None
        if not ok:
            raise FunctionError(f"{self.spec.name}: {value}")
        return value


class Function:
    """A function's containers: an idle one takes the invocation, else a new one starts, up to `concurrency`."""

    def __init__(self, spec: FunctionSpec, concurrency: int) -> None:
        self.spec = spec
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._idle: list[Container] = []
        self._all: list[Container] = []

    def warm(self) -> None:
        """Start one container now, so the first request does not wait for the import."""
        with self._lock:
            container = Container(self.spec)
            self._all.append(container)
            self._idle.append(container)

    def wait_ready(self) -> None:
        for container in list(self._all):
            container.wait_ready()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._slots:
            container = self._take()
            try:
                return container.invoke(event)
            finally:
                self._give_back(container)

    def stop(self) -> None:
        with self._lock:
            containers, self._all, self._idle = self._all, [], []
        for container in containers:
            container.stop()

    def _take(self) -> Container:
        with self._lock:
            while self._idle:
                container = self._idle.pop()
                if container.alive:
                    return container
                self._all.remove(container)  # died while idle: Lambda would start a fresh one
            container = Container(self.spec)
            self._all.append(container)
            return container

    def _give_back(self, container: Container) -> None:
        with self._lock:
            if container.alive and container in self._all:
                self._idle.append(container)
            elif container in self._all:
                self._all.remove(container)


def label(spec: FunctionSpec) -> str:
    """The function's service name, as its log lines carry it."""
    return spec.environment.get("POWERTOOLS_SERVICE_NAME", spec.name)


def _run(spec: FunctionSpec, connection: Connection) -> None:
    """The container's process: import the handler, then run one invocation per event received."""
    from devstack.lambdas import LocalFunction

    # Ctrl-C reaches the whole process group; the stack, not each container, decides when containers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Powertools warns on every invocation that records no metric (a refused request, say): noise while you watch.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
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
        except (EOFError, OSError):
            return
        try:
            result = function.invoke(event)
        except Exception as error:
            # Lambda prints the unhandled error to the function's log and reports it to the caller.
            traceback.print_exc()
            connection.send((False, f"{type(error).__name__}: {error}"))
        else:
            connection.send((True, result))
