"""The local stack started as a user starts it, driven over HTTP only, with a bot and a receiver of the tests' own."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator

import pytest

from harness import Receiver, local_server
from parties import BOT_SECRET, BOT_TOKEN, CLIENT_ID, CLIENT_TOKEN, WEBHOOK_SECRET, Bot, relay_clients
from relay.rate_limits import MAX_RATE
from stack_process import StackProcess

UNGROUPED = pytest.StashKey[list[str]]()
"""The shared stack's tests that xdist left ungrouped, under --dist loadgroup."""


@pytest.fixture(scope="session")
def bot() -> Iterator[Bot]:
    for server in local_server():
        yield Bot(server)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    for server in local_server():
        yield Receiver(server, {CLIENT_ID: WEBHOOK_SECRET}, path="/responses")


@pytest.fixture(scope="session")
def example_port() -> int:
    """A free port for the browser example's back end (examples/browser), whose origin the stack allows."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def stack(bot: Bot, receiver: Receiver, example_port: int, request: pytest.FixtureRequest) -> Iterator[StackProcess]:
    """`python -m devstack`, what `make dev` runs, on a free port; stopped after the tests, also when one fails."""
    if ungrouped := request.config.stash.get(UNGROUPED, []):
        pytest.fail(f"xdist did not keep the {len(ungrouped)} tests of the shared stack on one worker: {ungrouped[0]}")
    environment = {
        **os.environ,
        "PORT": "0",
        "BOT_WEBHOOK_URL": bot.url,
        "BOT_TOKEN": BOT_TOKEN,
        "DEV_RESPONSE_URL": receiver.url,
        "DEV_CLIENT_TOKEN": CLIENT_TOKEN,
        "DEV_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DEV_BOT_SECRET": BOT_SECRET,
        "DEV_BROWSER_ORIGINS": f"http://localhost:{example_port}",
    }
    with StackProcess.start(environment) as running:
        bot.response_url = f"{running.api_url}/bot/responses/{BOT_SECRET}"
        # These tests send as fast as the stack answers, one after another for minutes, all as this one client:
        # a rate of its own keeps one test's traffic from spending the next one's (test_rate_limits has its own).
        relay_clients(running, "set-rate", CLIENT_ID, str(MAX_RATE))
        yield running
        # Stopped as Ctrl-C in its terminal stops it, the whole group told at once: nothing it started is left.
        if running.process.poll() is None:  # (a stack that died has already failed the test that met it)
            running.interrupt(signal.SIGINT)
            assert running.leftovers() == [], "the stack left processes behind after Ctrl-C"


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups: otherwise it ran first and saw none
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), the tests of the shared local stack run on one worker, so one stack serves
    them all; those that start a stack of their own go to any worker."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here) and "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("e2e-stack"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """The grouping above failed silently twice (hook order, then a pytest release): the stack's tests say so."""
    if session.config.getoption("loadgroup", False):
        grouped = (item for item in session.items if item.get_closest_marker("xdist_group"))
        session.config.stash[UNGROUPED] = [item.nodeid for item in grouped if "@" not in item.nodeid]
