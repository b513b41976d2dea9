"""Fixtures: moto for AWS, real HTTP servers on 127.0.0.1 for the bot and the client's receiver."""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from moto import mock_aws
from pytest_httpserver import HTTPServer

from devstack import template
from devstack.lambdas import session_sharing_service_data
from harness import Relay, fresh, local_server

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_TRACE_DISABLED="true",
    # The functions share this process and so relay.observability's metrics, made at its first import
    # (often a test module's, outside any function's environment): the namespace all functions share.
    POWERTOOLS_METRICS_NAMESPACE=template.load()["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ],
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--iam-summary", action="store_true", help="print the AWS calls the IAM check covered per function"
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    # Every session of the test (a handler's, relay-clients', boto3's default) reads the service models parsed once:
    # parsing them again was a large part of each test's set-up.
    monkeypatch.setattr(boto3, "Session", session_sharing_service_data)
    with mock_aws():
        yield session_sharing_service_data()


@pytest.fixture(scope="session", autouse=True)
def _metrics_added_and_flushed_in_turn() -> Iterator[None]:
    """Powertools flushes metrics by checking that there are some, then serializing them, then clearing them. A
    Lambda environment runs one invocation at a time; here the functions of a test's threads share one set of
    metrics, and an invocation that had found another's metric in it could find it emptied by that one's flush
    before its own serialized it, and fail with "Must contain at least one metric" (or meet a metric added while
    it serialized: "dictionary changed size during iteration"). So adding and flushing take turns."""
    turns = threading.RLock()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("add_metric", "flush_metrics"):
            patch.setattr(
                AmazonCloudWatchEMFProvider, name, _in_turn(getattr(AmazonCloudWatchEMFProvider, name), turns)
            )
        yield


def _in_turn(method: Callable[..., None], turns: threading.RLock) -> Callable[..., None]:
    @functools.wraps(method)
    def in_turn(*args: Any, **kwargs: Any) -> None:
        with turns:
            method(*args, **kwargs)

    return in_turn


@pytest.fixture(autouse=True)
def _functions_log_left_writable() -> Iterator[None]:
    """A test may point the functions' logger at its captured output (capsys, capfd), but must put it back: that
    output is closed after the test, and every later log line of the run would fail on it (slowly, a traceback
    each). Set up before, so torn down after, the test's own fixtures."""
    yield
    observability = sys.modules.get("relay.observability")
    handler = observability.logger.registered_handler if observability else None
    stream = getattr(handler, "stream", None)
    assert not getattr(stream, "closed", False), f"the test left the functions' logger on a closed stream, {stream}"


# One server each for the session, emptied around every test: stopping a server waits for its poll loop
# (up to half a second), which was a large part of an integration test's set-up.
@pytest.fixture(scope="session")
def bot_server() -> Iterator[HTTPServer]:
    yield from local_server()


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[HTTPServer]:
    yield from local_server()


@pytest.fixture
def bot(bot_server: HTTPServer) -> Iterator[HTTPServer]:
    """The bot: a real HTTP server that takes messages as the Messaging API integration does."""
    yield from fresh(bot_server)


@pytest.fixture
def receiver(receiver_server: HTTPServer) -> Iterator[HTTPServer]:
    """A client's webhook receiver."""
    yield from fresh(receiver_server)


@pytest.fixture
def relay(aws: boto3.Session, bot: HTTPServer) -> Relay:
    bot.expect_request("/webhook", method="POST").respond_with_json({"message": {"id": "bp-msg"}})
    return Relay(aws, bot)
