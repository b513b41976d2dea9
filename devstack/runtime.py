"""Lambda's execution environments on this machine: each function's handler in processes of its own.

A container is a process (devstack.container) that imports the handler once, with the function's environment,
and then takes one invocation at a time, as a Lambda execution environment does. Containers are forked from a fork
server that has imported what every handler needs (multiprocessing's forkserver: forked from a process with one
thread, not from the stack's many). A function keeps its idle containers and starts another only when all are
busy, up to a limit. Each answer names the queues and topics its invocation sent to, which the function tells
whoever wakes those queues' pollers.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from devstack.container import serve
from devstack.provision import FunctionSpec
from relay.errors import Unauthorized
from relay.stores.clients import bearer_token

_INIT_TIMEOUT_SECONDS = 60
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["devstack.container"])
# What a process needs from this machine to run at all; everything else comes from the stack and the template.
_MACHINE_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


class FunctionError(Exception):
    """The invocation failed as Lambda reports a function error: the handler raised, timed out or crashed."""


class ContainerExited(FunctionError):
    """The container's process was gone before it took the invocation."""


class Container:
    """One execution environment: a process that has imported the function's handler."""

    def __init__(
        self, spec: FunctionSpec, environment: dict[str, str], sent: Callable[[Sequence[str]], None] = lambda _: None
    ) -> None:
        """`sent` is called with the queue URLs and topic ARNs each invocation sent messages to, if any, whether or
        not the handler raised."""
        self.spec = spec
        self._sent = sent
        self._connection, theirs = _FORKS.Pipe()
        machine = {name: os.environ[name] for name in _MACHINE_VARIABLES if name in os.environ}
        # A daemon: should the stack exit without stopping it, multiprocessing stops it on the way out.
        self._process = _FORKS.Process(
            target=serve, args=(theirs, {**machine, **environment}), name=spec.name, daemon=True
        )
        self._process.start()
        theirs.close()
        self._connection.send(spec)
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
            raise ContainerExited(f"{self.spec.name}: the process had exited") from None
        # A little over the function's timeout: the handler's own time guard gets to act first.
        return self._receive(self.spec.timeout_seconds + 1, "invocation")

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def stop(self) -> None:
        self._connection.close()
        self._process.terminate()
        self._process.join(2)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()

    def _receive(self, timeout: float, step: str) -> Any:
        try:
            if not self._connection.poll(timeout):
                self.stop()
                raise FunctionError(f"{self.spec.name}: {step} timed out after {timeout:.0f} s; process stopped")
            ok, value, sent_to = self._connection.recv()
        except (EOFError, OSError):
            self.stop()
            raise FunctionError(f"{self.spec.name}: the process exited during {step}") from None
        if sent_to:
            self._sent(sent_to)
        if not ok:
            raise FunctionError(f"{self.spec.name}: {value}")
        return value


class Function:
    """A function's containers: an idle one takes the invocation, else a new one starts, up to `concurrency`.

    Lambda starts an environment for every request that finds none free, so no request waits behind another. Here,
    with at most `concurrency` containers, a request may wait: the container that comes free goes to the caller
    (the bearer token's client, else the route) with the fewest invocations running, and among those to the one
    served longest ago, so that one client's burst of requests does not queue another client's behind it, which on
    AWS it could not.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        concurrency: int,
        environment: dict[str, str] | None = None,
        sent: Callable[[Sequence[str]], None] = lambda _: None,
    ) -> None:
        """`environment` is what every container gets besides the function's own: where AWS is, for one. `sent`
        is called with the queue URLs and topic ARNs each invocation sent messages to, before it returns."""
        self.spec = spec
        self._environment = environment or {}
        self._sent = sent
        self._free = concurrency
        self._turns = threading.Condition()
        self._tickets = itertools.count()
        self._waiting: dict[int, str] = {}
        """Each waiting invocation's ticket (in arrival order), and its caller."""
        self._running: Counter[str] = Counter()
        self._served: dict[str, int] = {}
        """Each caller with an invocation running or waiting: the ticket of its latest to get a container."""
        self._lock = threading.Lock()
        self._idle: list[Container] = []
        self._all: list[Container] = []

    def warm(self) -> None:
        """Start one container now, so the first request does not wait for the import."""
        with self._lock:
            container = Container(self.spec, self._environment, self._sent)
            self._all.append(container)
            self._idle.append(container)

    def wait_ready(self) -> None:
        for container in list(self._all):
            container.wait_ready()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._slot(_caller(event)):
            while True:
                container, was_idle = self._take()
                try:
                    return container.invoke(event)
                except ContainerExited:
                    # It died while idle, and multiprocessing had not heard yet (the fork server reports a child's
                    # exit when it reaps it): the event never reached it, and as on Lambda a fresh container takes it.
                    if not was_idle:
                        raise
                finally:
                    self._give_back(container)

    @contextmanager
    def _slot(self, caller: str) -> Iterator[None]:
        with self._turns:
            ticket = next(self._tickets)
            self._waiting[ticket] = caller
            try:
                while not self._free or self._next() != ticket:
                    self._turns.wait()
            except BaseException:  # interrupted while waiting: the next in line must not wait for this one
                del self._waiting[ticket]
                self._turns.notify_all()
                raise
            del self._waiting[ticket]
            self._free -= 1
            self._running[caller] += 1
            self._served[caller] = ticket
            if self._free and self._waiting:
                self._turns.notify_all()
        try:
            yield
        finally:
            with self._turns:
                self._free += 1
                self._running[caller] -= 1
                if not self._running[caller] and caller not in self._waiting.values():
                    del self._running[caller], self._served[caller]
                self._turns.notify_all()

    def _next(self) -> int:
        """The waiting invocation to run next: of the callers with the fewest running, the one served longest ago
        (or never), its earliest."""
        return min(
            self._waiting,
            key=lambda ticket: (
                self._running[self._waiting[ticket]],
                self._served.get(self._waiting[ticket], -1),
                ticket,
            ),
        )

    def stop(self) -> None:
        with self._lock:
            containers, self._all, self._idle = self._all, [], []
        for container in containers:
            container.stop()

    def _take(self) -> tuple[Container, bool]:
        """A container for one invocation, and whether it was idle (rather than started for it)."""
        with self._lock:
            while self._idle:
                container = self._idle.pop()
                if container.alive:
                    return container, True
                self._all.remove(container)  # died while idle: Lambda would start a fresh one
            container = Container(self.spec, self._environment, self._sent)
            self._all.append(container)
            return container, False

    def _give_back(self, container: Container) -> None:
        with self._lock:
            if container.alive and container in self._all:
                self._idle.append(container)
            elif container in self._all:
                self._all.remove(container)


def _caller(event: dict[str, Any]) -> str:
    """Who made an API request, for sharing the containers: the bearer token's client (the part before its first
    dot: a client token's client id; a conversation token's grant), else the route. Queue events have none."""
    try:
        return bearer_token(event.get("headers") or {}).partition(".")[0]
    except Unauthorized:
        return str(event.get("routeKey") or (event.get("requestContext") or {}).get("routeKey") or "")
