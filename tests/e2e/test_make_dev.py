"""`make dev` as a user meets it: the banner's curl works, the docs' examples run as shown, bad settings are named,
stopping leaves nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import doc_examples
from stack_process import ROOT, StackProcess

_SETTINGS = ("PORT", "DEV_CLIENT_TOKEN", "DEV_RESPONSE_URL", "DEV_WEBHOOK_SECRET", "BOT_WEBHOOK_URL", "BOT_TOKEN")


def environment(**settings: str) -> dict[str, str]:
    """The test run's environment without any local-stack setting but those given."""
    clean = {name: value for name, value in os.environ.items() if name not in _SETTINGS and name != "DEV_BOT_SECRET"}
    return {**clean, "PORT": "0", **settings}


def curl_command(banner: str) -> str:
    """The banner's example, as a user would copy it into a shell."""
    lines = banner.split("Send a message:\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return "\n".join(line.removeprefix("    ") for line in lines)


def relay_clients_command(banner: str) -> str:
    """The banner's relay-clients command, as a user would copy it."""
    return banner.split("Manage its clients", 1)[1].split("\n\n", 2)[1].strip()


def test_the_banners_commands_work_as_printed_and_stopping_make_leaves_no_process_behind() -> None:
    with StackProcess.start(environment(), ["make", "--no-print-directory", "dev"]) as stack:
        answer = subprocess.run(["bash", "-c", curl_command(stack.output)], capture_output=True, text=True, check=True)

        assert json.loads(answer.stdout)["status"] == "forwarded"
        stack.wait_for_output(r"receiver .* signature verified\n.*conversation-1 \(user-1\): text echo: hello")
        # Each function's log lines, readable: the message followed through all three.
        stack.wait_for_output(r"inbound +INFO +forwarded to the bot .*conversation_id=conversation-1")
        stack.wait_for_output(r"bot-response +INFO +published to the responses topic .*conversation_id=conversation-1")
        stack.wait_for_output(r"delivery +INFO +delivered .*conversation_id=conversation-1")
        # The relay-clients command, run as printed from a shell without PORT set, reaches the stack's clients table.
        listed = subprocess.run(
            ["bash", "-c", relay_clients_command(stack.output)],
            cwd=ROOT,
            env={name: value for name, value in os.environ.items() if name != "PORT"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert re.search(
            r"^demo +demo client \(make dev\) +yes +default +http://127\.0\.0\.1:", listed.stdout, re.MULTILINE
        )
        # What README.md and docs/ show of make dev, and the commands they give, as they run here.
        _check_the_docs_examples(stack, answer.stdout)
        assert len(stack.leftovers(timeout=0)) >= 4, "make, the stack and a container for each function"
        (stack_pid,) = stack.pids("python.* -m devstack$")

        # `kill <pid>` of make: only make is told, and the stack gets SIGTERM from it (make passes it on; were make
        # killed outright, the stack's watch of it sends it). A second signal at once, as when a terminal and make
        # both pass one on, lands in the clean-up and must not cut it short. (Ctrl-C, which tells the whole group,
        # stops the shared stack of the other e2e tests: tests/e2e/conftest.py.)
        stack.process.send_signal(signal.SIGTERM)
        os.kill(stack_pid, signal.SIGINT)
        stack.process.wait(30)

        assert stack.leftovers() == []
        stack.wait_for_output(r"stack +stopped")
        assert "Traceback" not in stack.output


def test_bad_settings_are_each_named_before_anything_starts() -> None:
    bad = {
        "DEV_CLIENT_TOKEN": ("no-client-id", "DEV_CLIENT_TOKEN: Value error, must be '<client id>.<secret>'"),
        "DEV_WEBHOOK_SECRET": ("not-a-secret", "DEV_WEBHOOK_SECRET: Value error, must be 'whsec_'"),
        "DEV_RESPONSE_URL": ("nowhere", "DEV_RESPONSE_URL: Input should be a valid URL"),
        "DEV_BOT_SECRET": ("a/b", "DEV_BOT_SECRET: Value error, must be letters, digits"),
        "PORT": ("http", "PORT: Input should be a valid integer"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=environment(**{name: value for name, (value, _) in bad.items()}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert [name for name, (_, complaint) in bad.items() if complaint not in result.stderr] == [], result.stderr


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "devstack"],
            cwd=ROOT,
            env=environment(PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 1
    assert re.search(rf"port {port} is in use; choose another, e.g. PORT=\d+ make dev", result.stderr)


def _check_the_docs_examples(stack: StackProcess, curl_answer: str) -> None:
    """Every marked example of README.md and docs/ (tests/doc_examples.py) against this stack, as a newcomer runs it:
    its banner, its log, the banner's curl's answer, and the console examples in a shell beside it."""
    for example in doc_examples.examples("banner"):
        missing = doc_examples.first_missing_in_order(example.lines, stack.output.splitlines())
        assert missing is None, f"{example}: the banner has no line like {missing!r}:\n{stack.output}"
    for example in doc_examples.examples("answer"):
        assert doc_examples.first_missing_in_order(example.lines, curl_answer.splitlines()) is None, (
            f"{example}: the banner's curl answered {curl_answer!r}"
        )
    for example in doc_examples.examples("log"):
        deadline = time.monotonic() + 15  # the stack's processes write as they go
        while unlogged := doc_examples.missing_entries(example.lines, stack.output.splitlines()):
            assert time.monotonic() < deadline, f"{example}: the stack printed nothing like {unlogged[0]}"
            time.sleep(0.1)
    environment = {
        **{name: value for name, value in os.environ.items() if name not in _SETTINGS},
        "API": stack.api_url,
        "TOKEN": stack.banner_value("client token"),
        "PORT": stack.api_url.rsplit(":", 1)[1],
    }
    for example in doc_examples.examples("console"):
        assert doc_examples.run_console(example, environment) == []
