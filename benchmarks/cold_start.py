"""Cold start of each function: importing its handler module and building its clients, in a fresh interpreter.

Run: .venv/bin/python benchmarks/cold_start.py  (moto stands in for AWS; no network is touched at init)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["InboundFunction", "BotResponseFunction", "DeliveryFunction"]
RUNS = 5

PROBE = """
import os, sys, time
from moto import mock_aws
sys.path.insert(0, {root!r})
with mock_aws():
    from devstack.provision import provision
    stack = provision({{"BotWebhookUrl": "http://127.0.0.1:9/webhook"}})
    from devstack.lambdas import LocalFunction
    started = time.perf_counter()
    LocalFunction(stack.functions[{name!r}])
    print((time.perf_counter() - started) * 1000)
"""


def main() -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "POWERTOOLS_TRACE_DISABLED": "true"}
    print(f"handler init (import + clients), median of {RUNS} fresh interpreters:")
    for name in FUNCTIONS:
        times = sorted(
            float(
                subprocess.run(  # noqa: S603 - this interpreter, our own probe
                    [sys.executable, "-c", PROBE.format(root=str(ROOT), name=name)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()[-1]
            )
            for _ in range(RUNS)
        )
        print(f"  {name:<20} {times[RUNS // 2]:7.1f} ms  (min {times[0]:.1f}, max {times[-1]:.1f})")


if __name__ == "__main__":
    main()
