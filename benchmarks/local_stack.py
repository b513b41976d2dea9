"""The local stack's speed, end to end, beside a direct POST to the bot measured in the same run.

Run: .venv/bin/python benchmarks/local_stack.py  (or `make bench`). It starts `python -m devstack` as
`make dev` does, with a bot and a receiver of its own, and measures:
- POST /messages, answered once the bot has taken the message, against a POST straight to that bot;
- end to end, from POST /messages until the bot's reply reaches the receiver: one conversation
  (each message after the previous one's reply has arrived) and new conversations (each message
  a conversation of its own);
- throughput: messages from several clients at once, each delivered, against direct POSTs to the bot
  with as many clients at once (after a first burst has started the containers it needs); and the CPU
  the stack's processes spend per message.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import urllib3

ROOT = Path(__file__).resolve().parent.parent
SEQUENTIAL = 60
"""Messages in each sequential series (one conversation; new conversations; direct POSTs)."""
CONCURRENT_CLIENTS = 8
THROUGHPUT_MESSAGES = 240
CONVERSATIONS = 24
"""How many conversations the throughput messages are spread over."""
BOT_TOKEN = secrets.token_urlsafe(24)
BOT_SECRET = secrets.token_urlsafe(18)
CLIENT_TOKEN = f"bench.{secrets.token_urlsafe(24)}"
_http = urllib3.PoolManager(maxsize=64, timeout=30, retries=False)


class _Server(ThreadingHTTPServer):
    """The benchmark's own bot and receiver: each answer in one write, on sockets without Nagle's delay."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status: int, body: bytes) -> None:
        head = f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        self.wfile.write(head.encode() + body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class Bot:
    """Takes a message, answers 200 at once, then POSTs one reply to the response URL, in order per conversation."""

    def __init__(self) -> None:
        self.response_url = ""
        self.replied: dict[str, list[str]] = {}
        """Each conversation's replies, in the order the bot sent them."""
        self._lanes = [_Lane(self) for _ in range(CONCURRENT_CLIENTS)]
        bot = self

        class Handler(_Handler):
            def do_POST(self) -> None:
                message = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if "conversationId" in message:  # the direct POSTs of the baseline carry none: no reply
                    bot._lanes[hash(message["conversationId"]) % len(bot._lanes)].put(message)
                self.answer(200, b'{"message":{"id":"bp-msg"}}')

        self.server = _Server(Handler)


class _Lane(threading.Thread):
    def __init__(self, bot: Bot) -> None:
        super().__init__(daemon=True)
        self._bot = bot
        self._messages: list[dict[str, Any]] = []
        self._ready = threading.Condition()
        self.start()

    def put(self, message: dict[str, Any]) -> None:
        with self._ready:
            self._messages.append(message)
            self._ready.notify()

    def run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._messages)
                message = self._messages.pop(0)
            reply = {
                "type": "text",
                "payload": {"text": message["text"]},
                "conversationId": message["conversationId"],
                "botpressUserId": "bp-user",
                "botpressMessageId": secrets.token_hex(8),
                "botpressConversationId": "bp-conversation",
            }
            _http.request("POST", self._bot.response_url, json=reply)
            conversation = message["conversationId"].partition(":")[2]  # the client's own id, as delivered
            self._bot.replied.setdefault(conversation, []).append(message["text"])


class Receiver:
    """Records when each reply arrives, and in which order within its conversation."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.order: dict[str, list[str]] = {}
        self._lock = threading.Condition()
        receiver = self

        class Handler(_Handler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                receiver.took(body["conversationId"], body["payload"]["text"])
                self.answer(204, b"")

        self.server = _Server(Handler)

    def took(self, conversation: str, text: str) -> None:
        with self._lock:
            if text not in self.arrived:
                self.arrived[text] = time.perf_counter()
                self.order.setdefault(conversation, []).append(text)
            self._lock.notify_all()

    def wait_for(self, texts: list[str], timeout: float = 120.0) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: all(text in self.arrived for text in texts), timeout):
                missing = [text for text in texts if text not in self.arrived]
                raise RuntimeError(f"{len(missing)} replies not delivered within {timeout} s, e.g. {missing[:3]}")


def start_stack(bot: Bot, receiver: Receiver, log: TextIO | None = None) -> tuple[subprocess.Popen[str], str]:
    """The stack serving, with `bot` and `receiver` as its bot and the demo client's receiver; its output goes
    to `log` if given."""
    environment = {
        **os.environ,
        "PORT": "0",
        "BOT_WEBHOOK_URL": f"{bot.server.url}/webhook",
        "BOT_TOKEN": BOT_TOKEN,
        "DEV_RESPONSE_URL": f"{receiver.server.url}/responses",
        "DEV_CLIENT_TOKEN": CLIENT_TOKEN,
        "DEV_BOT_SECRET": BOT_SECRET,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout
    output = []
    for line in process.stdout:
        output.append(line)
        if "serving after" in line:
            break
    else:
        raise RuntimeError(f"the stack exited without serving:\n{''.join(output)}")
    if log:
        log.writelines(output)

    def drain(stdout: TextIO) -> None:
        for line in stdout:
            if log:
                log.write(line)

    threading.Thread(target=drain, args=(process.stdout,), daemon=True).start()
    api_url = re.search(r"API URL\s+(\S+)", "".join(output))
    assert api_url
    bot.response_url = f"{api_url.group(1)}/bot/responses/{BOT_SECRET}"
    return process, api_url.group(1)


def post(url: str, body: dict[str, Any], token: str) -> float:
    """Seconds until the answer; fails on anything but 200."""
    started = time.perf_counter()
    response = _http.request("POST", url, json=body, headers={"authorization": f"Bearer {token}"})
    if response.status != 200:
        raise RuntimeError(f"POST {url}: {response.status} {response.data[:200]!r}")
    return time.perf_counter() - started


def message(conversation: str, text: str) -> dict[str, Any]:
    return {
        "userId": "user-1",
        "messageId": str(uuid.uuid4()),
        "conversationId": conversation,
        "type": "text",
        "text": text,
        "payload": {"text": text},
    }


def end_to_end(
    api_url: str, receiver: Receiver, conversation_of: Any, label: str, count: int = SEQUENTIAL
) -> tuple[list[float], list[float]]:
    """For each message in turn: (POST /messages answered, reply delivered), in seconds from the POST."""
    answered, delivered = [], []
    for number in range(count):
        text = f"{label}-{number}"
        started = time.perf_counter()
        answered.append(post(f"{api_url}/messages", message(conversation_of(number), text), CLIENT_TOKEN))
        receiver.wait_for([text], 30)
        delivered.append(receiver.arrived[text] - started)
    return answered, delivered


def burst(pool: ThreadPoolExecutor, api_url: str, receiver: Receiver, label: str, count: int) -> None:
    """`count` messages in CONVERSATIONS conversations, POSTed by the pool's clients at once; until all delivered."""
    texts = [f"{label}-{n}" for n in range(count)]

    def send(n: int) -> float:
        return post(f"{api_url}/messages", message(f"{label}-{n % CONVERSATIONS}", texts[n]), CLIENT_TOKEN)

    list(pool.map(send, range(count)))
    receiver.wait_for(texts)


def session_cpu_seconds(session: int) -> dict[int, tuple[str, float]]:
    """CPU time so far of each process in the stack's session, with its part: the stack's own, moto, a container."""
    processes = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[3]) == session:
            pid = int(stat.parent.name)
            # Containers are forked from the stack's fork server, and each takes a process group of its own.
            container = int(fields[2]) == pid and any(b"multiprocessing.forkserver" in arg for arg in command)
            part = "functions" if container else "moto" if b"devstack.aws" in command else "stack"
            processes[pid] = (part, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return processes


def cpu_per_part(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between the two readings, by part; containers that started in between are a part
    of their own (their handler's import is most of it, a cost of the first burst rather than of each message)."""
    parts = {"moto": 0.0, "stack": 0.0, "functions": 0.0, "new containers": 0.0}
    for pid, (part, seconds) in after.items():
        if pid in before:
            parts[part] += seconds - before[pid][1]
        else:
            parts["new containers" if part == "functions" else part] += seconds
    return parts


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> None:
    bot, receiver = Bot(), Receiver()
    process, api_url = start_stack(bot, receiver)
    try:
        direct = [post(f"{bot.server.url}/webhook", {"text": "x"}, BOT_TOKEN) for _ in range(SEQUENTIAL)]
        end_to_end(api_url, receiver, lambda n: f"warm-{n}", "warm", count=5)  # the first requests import more
        one_answered, one = end_to_end(api_url, receiver, lambda n: "one-conversation", "one")
        new_answered, new = end_to_end(api_url, receiver, lambda n: f"new-{n}", "new")

        with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
            started = time.perf_counter()
            list(pool.map(lambda n: post(f"{bot.server.url}/webhook", {"text": "x"}, BOT_TOKEN), range(600)))
            direct_rate = 600 / (time.perf_counter() - started)

            # A first burst starts the containers a burst needs (the functions' imports are not throughput; any
            # container that still starts during the measure is shown apart).
            burst(pool, api_url, receiver, "start", 2 * CONVERSATIONS)
            cpu_before = session_cpu_seconds(process.pid)
            started = time.perf_counter()
            burst(pool, api_url, receiver, "load", THROUGHPUT_MESSAGES)
            rate = THROUGHPUT_MESSAGES / (time.perf_counter() - started)
            cpu = cpu_per_part(cpu_before, session_cpu_seconds(process.pid))
            cpu = {part: seconds / THROUGHPUT_MESSAGES for part, seconds in cpu.items()}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)

    base = statistics.median(direct)
    print(f"local stack, {SEQUENTIAL} messages per series; baseline: a direct POST to the bot, p50 {ms(base)}")
    rows = [
        ("POST /messages (one conversation)", one_answered),
        ("POST /messages (new conversations)", new_answered),
        ("end to end, one conversation", one),
        ("end to end, new conversations", new),
    ]
    for label, values in rows:
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"  {label:36} p50 {ms(p50)} ({p50 / base:6.1f}x)   p95 {ms(p95)} ({p95 / base:6.1f}x)")
    print(
        f"  one-conversation p95 / new-conversation p50: {percentile(one, 0.95) / statistics.median(new):.2f}"
        " (goal: at most 3)"
    )
    print(
        f"  throughput, {CONCURRENT_CLIENTS} clients, {THROUGHPUT_MESSAGES} messages in {CONVERSATIONS} conversations:"
        f" {rate:.1f} delivered/s against {direct_rate:.0f} direct POSTs/s to the bot ({direct_rate / rate:.0f}x);"
        f" {sum(cpu.values()) * 1000:.0f} ms of CPU per message in the stack's processes"
        f" ({', '.join(f'{part} {seconds * 1000:.1f}' for part, seconds in cpu.items())})"
    )
    disordered = [c for c, texts in bot.replied.items() if receiver.order.get(c) != texts]
    print(f"  conversations whose replies arrived in another order than the bot sent them: {len(disordered)}")


if __name__ == "__main__":
    main()
