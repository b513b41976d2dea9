"""Time from starting the local stack to serving, with the stack's own split of its steps.

Run: .venv/bin/python benchmarks/dev_start.py  (or `make bench`). Each run is a fresh process on a
free port, as `make dev` starts it once `.venv` exists.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def one_start() -> tuple[float, str]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env={**os.environ, "PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout
    try:
        for line in process.stdout:
            if match := re.search(r"serving after .*", line):
                return time.perf_counter() - started, match.group(0)
        raise RuntimeError(f"the stack exited ({process.wait()}) without serving")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def main() -> None:
    results = [one_start() for _ in range(RUNS)]
    seconds = [wall for wall, _ in results]
    print(f"local stack, process start to serving, {RUNS} runs: median {statistics.median(seconds):.2f} s")
    print(f"  min {min(seconds):.2f} s, max {max(seconds):.2f} s")
    for wall, line in results:
        print(f"  {wall:.2f} s  (stack: {line})")


if __name__ == "__main__":
    main()
