"""Starting and stopping the local stack as a terminal would, and talking to it over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import urllib3

ROOT = Path(__file__).resolve().parents[2]
_http = urllib3.PoolManager(maxsize=32, timeout=30, retries=False)


def post_json(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = _http.request(
        "POST", url, body=json.dumps(body), headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        return response.status, response.json()
    except ValueError:
        return response.status, response.data.decode()


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = _http.request("GET", url, headers=headers or {})
    return response.status, response.json()


# Ctrl-C and Ctrl-\ as a terminal's shell leaves them, whoever started the tests: a run started in the background of
# a script (as CI may be) hands SIGINT and SIGQUIT down ignored, and the stack keeps an ignored SIGINT ignored, as a
# command started with nohup or `&` should. Reset, then exec'd: signals set to default survive exec.
_AS_A_TERMINAL_STARTS_IT = [
    sys.executable,
    "-c",
    "import os, signal, sys; [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGQUIT)]; "
    "os.execvp(sys.argv[1], sys.argv[1:])",
]


class StackProcess:
    """The stack's process group, its output as it comes, and the URLs its banner printed."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    @contextmanager
    def start(cls, environment: dict[str, str], command: list[str] | None = None) -> Iterator[StackProcess]:
        process = subprocess.Popen(
            [*_AS_A_TERMINAL_STARTS_IT, *(command or [sys.executable, "-m", "devstack"])],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal gives a command
        )
        running = cls(process)
        try:
            running.wait_for_output(r"serving after")
            yield running
        finally:
            running.stop()
            if running.output:
                print(f"--- local stack output ---\n{running.output}")

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def api_url(self) -> str:
        return self.banner_value("API URL")

    def banner_value(self, name: str) -> str:
        match = re.search(rf"^\s+{name}\s+(\S+)", self.output, re.MULTILINE)
        assert match, f"no '{name}' in the banner:\n{self.output}"
        return match.group(1)

    def wait_for_output(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.output):
                return match
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"the stack exited ({self.process.returncode}) before printing {pattern!r}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the stack's output within {timeout} s")

    def interrupt(self, signum: int = signal.SIGINT, *, group: bool = True) -> int:
        """Ctrl-C in a terminal signals the whole foreground group; `kill` signals one process."""
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self._show_why_it_is_still_running()
            raise

    def pids(self, command: str) -> list[int]:
        """The processes of the stack's session whose command line matches `command` (a pgrep pattern)."""
        found = subprocess.run(
            ["pgrep", "-s", str(self.process.pid), "-f", command], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in found.stdout.split()]

    def _show_why_it_is_still_running(self) -> None:
        """The stack's signal dispositions and each of its threads' stack (it dumps them on SIGUSR1), in its output."""
        for pid in self.pids("python.* -m devstack$"):
            status = Path(f"/proc/{pid}/status").read_text()
            self.lines.extend(line for line in status.splitlines() if line.startswith(("State", "Sig")))
            os.kill(pid, signal.SIGUSR1)
        time.sleep(2)

    def leftovers(self, timeout: float = 10.0) -> list[str]:
        """The processes of the stack's session (everything it started) still running after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            found = subprocess.run(
                ["pgrep", "-l", "-s", str(self.process.pid)], capture_output=True, text=True, check=False
            )
            assert found.returncode in (0, 1), f"pgrep failed: {found.stderr}"
            left = found.stdout.splitlines()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(subprocess.TimeoutExpired):
                self.interrupt()
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._reader.join(5)

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
