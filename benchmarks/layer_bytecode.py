"""What a layer without bytecode costs each cold start: the handler imported with the layer's packages compiled
on the fly (as from a read-only /opt without __pycache__) against compiled, boto3 already imported in both
(it is the runtime's own, compiled). Ratio of CPU times, median of 5 fresh interpreters each, interleaved.

Run: .venv/bin/python benchmarks/layer_bytecode.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = {"InboundFunction": "inbound", "BotResponseFunction": "bot_response", "DeliveryFunction": "delivery"}
RUNS = 5

PROBE = """
import sys, tempfile, time
import boto3, urllib3
if sys.argv[2] == "uncompiled":  # bytecode neither found nor written from here on
    sys.pycache_prefix, sys.dont_write_bytecode = tempfile.mkdtemp(), True
sys.path.insert(0, sys.argv[1])
started = time.process_time()
import app
print(time.process_time() - started)
"""


def main() -> None:
    environment = json.loads((ROOT / "events" / "env.json").read_text())
    print(f"handler import, layer without bytecode / with it (CPU, median of {RUNS}, boto3 already loaded):")
    for name, function in FUNCTIONS.items():
        env = {
            "PATH": os.environ["PATH"],
            **environment[name],
            "BOT_WEBHOOK_URL": "https://bot.example/webhook",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": str(ROOT / "layers" / "relay"),
        }
        times: dict[str, list[float]] = {"compiled": [], "uncompiled": []}
        for _ in range(RUNS):
            for mode in times:
                done = subprocess.run(  # noqa: S603 - this interpreter, our own probe
                    [sys.executable, "-c", PROBE, str(ROOT / "functions" / function), mode],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times[mode].append(float(done.stdout))
        compiled, uncompiled = (statistics.median(times[mode]) * 1000 for mode in times)
        print(f"  {function:<14} {uncompiled / compiled:5.2f}x ({uncompiled:.0f}/{compiled:.0f} ms)")


if __name__ == "__main__":
    main()
