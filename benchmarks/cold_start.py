"""Cold start, warm CPU and memory of each function, as ratios to a bare boto3 + urllib3 handler in the same run.

Each probe is a fresh interpreter timed from the first line of its `python -c` program: it imports the
handler as Lambda does, runs its first event, then more; both sides talk to the same moto server (a
process of its own, through AWS_ENDPOINT_URL) and to the same local HTTP server for the bot and the
client's webhook. The bare handlers in benchmarks/bare/<function>/ make the same AWS calls and the same HTTP call
(`--check` prints the calls of each side per event). Runs are interleaved, this/bare order alternating.

Run: .venv/bin/python benchmarks/cold_start.py [--runs 7] [--tracing] [--check]
  --tracing  both sides as in Lambda with `Tracing: Active` and POWERTOOLS_TRACE_DISABLED=false:
             a trace header per event, an X-Ray daemon address (nothing listens; segments are UDP)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FUNCTIONS = {"InboundFunction": "inbound", "BotResponseFunction": "bot_response", "DeliveryFunction": "delivery"}
EVENTS = 150
MEMORY_AFTER = 100  # events before the RSS high-water mark is read
WARM_FROM = 10  # events before the warm CPU is measured

# Timed from its first line. Nothing is imported before the handler but what the interpreter itself loads.
PROBE = """
import time
started, started_cpu = time.perf_counter(), time.process_time()
import importlib, os, sys
sys.path.insert(0, sys.argv[1])
if os.environ.get("BENCH_COUNT_CALLS") == "1":  # not a timed run: count the AWS calls of the handler's clients
    import boto3
    calls = []
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call", lambda model, **_: calls[-1].append(model.name))
handler = importlib.import_module("app").lambda_handler
imported, imported_cpu = time.perf_counter(), time.process_time()
import json, resource, secrets
events = [json.loads(line) for line in open(sys.argv[2])]
warm_from, memory_after = int(sys.argv[3]), int(sys.argv[4])
trace = os.environ.get("BENCH_TRACE") == "1"
count = os.environ.get("BENCH_COUNT_CALLS") == "1"

class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self):
        return 25000

def invoke(event):
    if trace:  # as Lambda's runtime does for each invocation of a traced function
        os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{secrets.token_hex(4)}-{secrets.token_hex(12)};" \\
            f"Parent={secrets.token_hex(8)};Sampled=1"
    if count:
        calls.append([])
    result = handler(event, Context())
    status = result.get("statusCode", 200)
    assert status == 200 and not result.get("batchItemFailures"), result

first_started, first_started_cpu = time.perf_counter(), time.process_time()
invoke(events[0])
first, first_cpu = time.perf_counter() - first_started, time.process_time() - first_started_cpu
for event in events[1:warm_from]:
    invoke(event)
cpu_started = time.process_time()
for index, event in enumerate(events[warm_from:], start=warm_from):
    if index == memory_after:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    invoke(event)
cpu = (time.process_time() - cpu_started) / (len(events) - warm_from)
if count:
    print(json.dumps({"first": calls[0], "warm": calls[-1]}))
else:
    cold = {"import": imported - started, "first": imported - started + first}
    cold_cpu = {"import_cpu": imported_cpu - started_cpu, "first_cpu": imported_cpu - started_cpu + first_cpu}
    print(json.dumps(cold | cold_cpu | {"cpu": cpu, "rss": rss}))
"""


class Peer(BaseHTTPRequestHandler):
    """The bot and the client's webhook: takes any POST and answers 200 in one write."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")

    def log_message(self, *_: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    moto = subprocess.Popen(  # noqa: S603 - this interpreter, moto's own server
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return moto, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    moto.kill()
    raise SystemExit("moto's server did not start")


def setup(moto_url: str, peer_url: str, directory: Path, probes: list[str]) -> None:
    """In a process of its own, so the parent stays small: a child inherits its ru_maxrss across fork and exec.

    Provisions the template's resources on moto, registers a client and a conversation, and writes each
    probe's events (distinct ids for every probe) and each function's environment.
    """
    import boto3

    from devstack.lambdas import http_event
    from devstack.provision import provision
    from relay.models import Conversation
    from relay.stores.clients import ClientStore
    from relay.stores.conversations import ConversationStore

    stack = provision({"BotWebhookUrl": f"{peer_url}/webhook"})
    dynamodb = boto3.Session(region_name="us-east-1").client("dynamodb")
    _, token = ClientStore(dynamodb, stack.ref("ClientsTable")).register("acme", "bench", f"{peer_url}/hook")
    conversation = Conversation(client_id="acme", conversation_id="c-1", user_id="u-1")
    ConversationStore(dynamodb, stack.ref("ConversationsTable")).record(conversation)
    sample = json.loads((ROOT / "events" / "delivery.json").read_text())["Records"][0]
    bot_path = f"/bot/responses/{stack.secret_values['BotResponseSecret']}"

    def event(name: str, unique: str) -> dict[str, Any]:
        if name == "InboundFunction":
            message = {"userId": "u-1", "messageId": unique, "conversationId": "c-1", "type": "text", "text": "hi"}
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            return http_event("POST", "/messages", "/messages", headers, json.dumps(message).encode())
        response = {"type": "text", "payload": {"text": "hi"}, "botpressMessageId": unique, "botpressUserId": "u"}
        if name == "BotResponseFunction":
            body = json.dumps(
                response | {"conversationId": conversation.bot_conversation_id, "botpressConversationId": "b"}
            )
            return http_event("POST", "/bot/responses/{secret}", bot_path, {}, body.encode())
        body = json.dumps(response | {"conversationId": "c-1", "clientId": "acme", "userId": "u-1"})
        return {"Records": [sample | {"messageId": str(uuid.uuid4()), "body": body}]}

    for probe in probes:
        name = probe.split("-")[1]
        lines = (json.dumps(event(name, f"{probe}-{i}")) for i in range(EVENTS))
        (directory / f"{probe}.jsonl").write_text("\n".join(lines))
    environments = {name: spec.environment for name, spec in stack.functions.items()}
    (directory / "environments.json").write_text(json.dumps(environments))


class Bench:
    def __init__(self, directory: Path, moto_url: str, peer_url: str, runs: int, tracing: bool) -> None:
        self.directory = directory
        probes = [f"{run}-{name}-{side}" for run in range(runs) for name in FUNCTIONS for side in ("this", "bare")]
        subprocess.run(  # noqa: S603 - this interpreter, this script
            [sys.executable, __file__, "--setup", moto_url, peer_url, str(self.directory), *probes], check=True
        )
        self.environments = json.loads((self.directory / "environments.json").read_text())
        self.base_env = {
            **{name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ},
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": str(ROOT / "layers" / "relay"),
        }
        # Over the function's own environment, whatever the template says.
        self.tracing_env = (
            {
                "POWERTOOLS_TRACE_DISABLED": "false",
                "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{free_port()}",
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                "BENCH_TRACE": "1",
            }
            if tracing
            else {"POWERTOOLS_TRACE_DISABLED": "true"}
        )

    def probe(self, run: int, name: str, side: str, *, count_calls: bool = False) -> dict[str, Any]:
        code_dir = (
            ROOT / "functions" / FUNCTIONS[name] if side == "this" else ROOT / "benchmarks" / "bare" / FUNCTIONS[name]
        )
        env = {
            **self.base_env,
            **self.environments[name],
            **self.tracing_env,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "LAMBDA_TASK_ROOT": str(code_dir),
            "BENCH_COUNT_CALLS": "1" if count_calls else "",
        }
        events = self.directory / f"{run}-{name}-{side}.jsonl"
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # what the probe inherits
        done = subprocess.run(  # noqa: S603 - this interpreter, our own probe
            [sys.executable, "-c", PROBE, str(code_dir), str(events), str(WARM_FROM), str(MEMORY_AFTER)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"{name} ({side}) failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        if not count_calls and result["rss"] <= floor:
            raise SystemExit(f"{name} ({side}): its peak RSS is hidden under the {floor} KiB it inherited")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tracing", action="store_true", help="as in Lambda with X-Ray tracing on")
    parser.add_argument("--check", action="store_true", help="print each side's AWS calls per event and stop")
    parser.add_argument("--setup", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        moto_url, peer_url, directory, *probes = args.setup
        os.environ |= {"AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        return setup(moto_url, peer_url, Path(directory), probes)

    moto, moto_url = start_moto()
    peer = ThreadingHTTPServer(("127.0.0.1", 0), Peer)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    directory = Path(tempfile.mkdtemp(prefix="cold-start-"))
    try:
        bench = Bench(directory, moto_url, f"http://127.0.0.1:{peer.server_port}", args.runs, args.tracing)
        if args.check:
            for name in FUNCTIONS:
                for side in ("this", "bare"):
                    calls = bench.probe(0, name, side, count_calls=True)
                    print(f"{name:<20} {side:<4} first event {calls['first']}, warm event {calls['warm']}")
            return
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for run in range(args.runs):
            for name in FUNCTIONS:
                for side in ("this", "bare") if run % 2 == 0 else ("bare", "this"):
                    results.setdefault((name, side), []).append(bench.probe(run, name, side))
        report(results, args)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        peer.shutdown()
        moto.terminate()
        moto.wait()


def report(results: dict[tuple[str, str], list[dict[str, float]]], args: argparse.Namespace) -> None:
    tracing = "X-Ray SDK tracing on" if args.tracing else "tracing off in the process"
    print(f"this project / bare boto3 handler, median of {args.runs} interleaved fresh interpreters ({tracing}):")
    measures = {
        "import (wall)": ("import", 1000, "ms"),
        "import + first event (wall)": ("first", 1000, "ms"),
        "import (CPU)": ("import_cpu", 1000, "ms"),
        "import + first event (CPU)": ("first_cpu", 1000, "ms"),
        "warm CPU per event": ("cpu", 1000, "ms"),
        f"peak RSS after {MEMORY_AFTER} events": ("rss", 1 / 1024, "MiB"),
    }
    print(f"{'':<36}" + "".join(f"{name:>26}" for name in FUNCTIONS))
    for label, (key, scale, unit) in measures.items():
        cells = []
        for name in FUNCTIONS:
            this = statistics.median(r[key] for r in results[(name, "this")])
            bare = statistics.median(r[key] for r in results[(name, "bare")])
            cells.append(f"{this / bare:.2f}x ({this * scale:.1f}/{bare * scale:.1f} {unit})".rjust(26))
        print(f"{label:<36}" + "".join(cells))


if __name__ == "__main__":
    main()
