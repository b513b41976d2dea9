"""Every integration test is IAM checked: each AWS call a function makes must be allowed by its policy."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from iam_policy import Call, CallRecorder, summary, violations

recorder = CallRecorder()
recorder.install()
checked: list[Call] = []


@pytest.fixture(autouse=True)
def iam_checked(request: pytest.FixtureRequest) -> Iterator[CallRecorder]:
    """Records the test's AWS calls per function; the test fails naming each call its function may not make."""
    recorder.take()
    recorder.test = request.node.nodeid
    boto3.DEFAULT_SESSION = None  # made again when used, with the recorder's hooks
    yield recorder
    boto3.DEFAULT_SESSION = None
    calls = recorder.take()
    checked.extend(calls)
    if problems := violations(calls):
        pytest.fail("\n".join(map(str, problems)), pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """With --iam-summary (`make bench`) or -s: the calls the IAM check covered, per function."""
    if checked and (config.getoption("iam_summary") or config.getoption("capture") == "no"):
        terminalreporter.write_line("\n" + summary(checked))
