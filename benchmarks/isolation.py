"""Isolation between clients in the local stack: a healthy client's turn latency beside a troubled neighbour, as
ratios to the healthy client alone measured in the same run (issue 19, "How to show it").

Run: .venv/bin/python benchmarks/isolation.py  (or `make bench`). It starts `python -m devstack` as `make dev` does,
with a bot and receivers of its own on 127.0.0.1. The healthy client is the stack's demo client; each neighbour is
a client of its own, made with `relay-clients --dev create` as a user would, so no kind inherits another's breaker.

- The healthy client has 6 conversations and sends 16 turns in each, the conversations side by side, each starting
  a sixth of the gap after the one before, as a client's users do (all six at once, the slowest of that burst of
  their own was every part's p95, a neighbour's cost hidden under it). A turn is its POST /messages, then waiting
  for the bot's 3 responses at its receiver; its latency runs from the POST to the 3rd response's arrival. Between
  turns a conversation pauses 3 s, so that the turns span a neighbour's first seconds (before its breaker opens),
  its open breaker and its parking (after 10 s in the local stack).
- The bot answers each forwarded message with 3 responses POSTed back to back to /bot/responses/{secret}, in order
  per conversation.
- A neighbour sends a message every 0.5 s over 6 conversations while the healthy client's turns run (from a second
  before the first), to a receiver that is hanging (takes the request, never answers: each POST runs into the
  webhook timeout), slow (answers 204 after 8 s), failing (answers 500) or refusing (a closed port); or, as a
  control, busy: a receiver that answers at once, so that its ratio is what a neighbour's ordinary traffic costs
  the healthy client on this machine, where every function and moto share the same cores; or, flooding,
  it POSTs /messages from 12 threads as fast as it is answered, to a receiver that answers at once. The flooding
  client has a rate of 2/s of its own (FLOOD_RATE: the stack's 20/s scaled to what this machine carries), and a
  thread answered 429 waits its Retry-After, as told, then floods on (each 429 is counted); or, flooding-jittered,
  the same flood whose threads wait their Retry-After and a random fraction of a second more (FLOOD_JITTER_SECONDS),
  as docs/clients.md advises, so that its threads, refused together, do not all come back together on the whole
  second. Each neighbour, with its receiver, runs in a process of its own (NeighbourProcess), as another client
  does on a machine of its own.
- First a warm-up brings the functions to the containers the parts need (warm_up), as a deployment that has seen
  such traffic has them warm.
- The baseline is the healthy client alone, first and again last. After its part a neighbour is disabled and its
  response URL removed (as an operator would), and the delivery queue is given up to 90 s to empty, so that a kind
  meets as little as can be of the previous one's backlog (what is left is printed). A turn not done in 20 s is
  late: the next one starts, and its latency is read when its responses come; the healthy client's last responses
  have 60 s after the last part.

It prints, per part, the healthy client's turn p50 and p95 with their ratios to the baselines' together, whether p95
is within 1.5x (the issue's goal), the ratio of its POST /messages p95, its p95's ratio to the busy control's, the
CPU the stack's processes took meanwhile (in cores), what the neighbour's POSTs were answered and how many POSTs its
receiver took; then whether every response of the
healthy client arrived, in order per conversation. The stack's output (the delivery function's "breaker", "held",
"parked" lines...) is kept in the file named last.

Environment: ISOLATION_TURNS (16: a p95 over 96 turns is their 5th slowest; at 8, over 48 turns and with the turns
not yet spread, the busy control alone ranged from 1.06x to 1.59x in five runs of one day, and a run's two baselines
differed by up to 1.7x), ISOLATION_CONVERSATIONS (6), ISOLATION_TURN_GAP (3 s), ISOLATION_KINDS
(busy,hanging,slow,failing,refusing,flooding,flooding-jittered), ISOLATION_SETTLE (90 s), ISOLATION_LOG (default: a
new file in the temporary directory).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import queue
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import boto3
import urllib3
from local_stack import (
    CLIENT_TOKEN,
    ROOT,
    Receiver,
    _Handler,
    _Server,
    message,
    percentile,
    session_cpu_seconds,
    start_stack,
)

from relay_clients import dev

TURNS = int(os.environ.get("ISOLATION_TURNS", "16"))
CONVERSATIONS = int(os.environ.get("ISOLATION_CONVERSATIONS", "6"))
TURN_GAP = float(os.environ.get("ISOLATION_TURN_GAP", "3"))
KINDS = tuple(
    os.environ.get("ISOLATION_KINDS", "busy,hanging,slow,failing,refusing,flooding,flooding-jittered").split(",")
)
SETTLE_SECONDS = float(os.environ.get("ISOLATION_SETTLE", "90"))
RESPONSES = 3
"""Bot responses to each message."""
NEIGHBOUR_INTERVAL = 0.5
NEIGHBOUR_CONVERSATIONS = 6
NEIGHBOUR_LEAD = 1.0
"""Seconds a neighbour sends before the healthy client's first turn: a flood's first dozen requests at once would
otherwise meet that turn on this machine's few cores, which deployed they do not share."""
FLOOD_THREADS = 12
FLOOD_RATE = 2
"""The flooding neighbour's rate (requests per second, bursts of twice it), set with `relay-clients set-rate`. The
stack's 20/s is a fraction of what AWS carries (the bot's route alone takes 200 responses/s). This stack, on a
2-core machine, carries all clients together less than that: a flood at 20/s was answered about 6 times a second,
every time 200, and took the whole machine. So the rate is scaled down, as the local stack's retry delays are, to
about a third of what the stack carries, as 20/s is of the bot's route with 3 responses a message."""
FLOOD_JITTER_SECONDS = 1.0
"""The most a flooding-jittered thread waits beyond a 429's Retry-After (a whole number of seconds, so a dozen
threads refused within the same moment all come back within the same moment again); each wait draws its own."""
SLOW_SECONDS = 8.0
WARM_UP_SECONDS = 2.0
"""How long the warm-up neighbour's receiver takes to answer: each of its conversations holds a delivery execution,
as a hanging or slow receiver's do, but within the time that counts against a breaker (half the webhook timeout)."""
GOAL = 1.5
"""The issue's goal: with any neighbour, the healthy client's turn p95 at most this many times its baseline's."""
TURN_TIMEOUT = 20.0
"""How long a conversation waits for a turn's responses before its next turn (the late turn's latency is still
read when its responses come)."""
FINAL_WAIT = 60.0
"""How long the healthy client's last responses may take, after its last part, before they count as lost."""
HEALTHY = CLIENT_TOKEN.partition(".")[0]
RELAY_CLIENTS = Path(sys.executable).parent / "relay-clients"
_http = urllib3.PoolManager(maxsize=128, timeout=30, retries=False)


class Bot:
    """Takes a message, answers 200 at once, then POSTs RESPONSES responses to the response URL back to back, in
    order per conversation (a thread for each)."""

    def __init__(self) -> None:
        self.response_url = ""
        self.refused: Counter[str] = Counter()
        """Bot responses the relay did not take, by client."""
        self._lanes: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        bot = self

        class Handler(_Handler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                bot._lane(body["conversationId"]).put(body)
                self.answer(200, b'{"message":{"id":"bp-msg"}}')

        self.server = _Server(Handler)

    def _lane(self, conversation: str) -> queue.Queue[dict[str, Any]]:
        with self._lock:
            if conversation not in self._lanes:
                self._lanes[conversation] = queue.Queue()
                threading.Thread(target=self._answer, args=(self._lanes[conversation],), daemon=True).start()
            return self._lanes[conversation]

    def _answer(self, messages: queue.Queue[dict[str, Any]]) -> None:
        while True:
            forwarded = messages.get()
            for number in range(1, RESPONSES + 1):
                response = {
                    "type": "text",
                    "payload": {"text": f"{forwarded['text']}/{number}"},
                    "conversationId": forwarded["conversationId"],
                    "botpressUserId": "bp-user",
                    "botpressMessageId": f"{forwarded['messageId']}/{number}",
                    "botpressConversationId": "bp-conversation",
                }
                try:
                    status = _http.request("POST", self.response_url, json=response).status
                except urllib3.exceptions.HTTPError:
                    status = 0
                if status != 200:
                    with self._lock:
                        self.refused[forwarded["conversationId"].partition(":")[0]] += 1


class NeighbourReceiver:
    """A neighbour's response URL: a server of its kind on 127.0.0.1, or a closed port (refusing)."""

    def __init__(self, kind: str) -> None:
        self.posts = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        """Set when the run ends: the hanging and slow handlers return."""
        self.server: _Server | None = None
        if kind == "refusing":
            with socket.socket() as probe:  # a port nothing listens on once this socket is closed
                probe.bind(("127.0.0.1", 0))
                self.url = f"http://127.0.0.1:{probe.getsockname()[1]}/responses"
            return
        receiver = self

        class Handler(_Handler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                with receiver._lock:
                    receiver.posts += 1
                if kind == "hanging":
                    receiver._release.wait()
                    self.close_connection = True
                elif kind == "slow":
                    receiver._release.wait(SLOW_SECONDS)
                    self.answer(204, b"")
                elif kind == "warm-up":
                    receiver._release.wait(WARM_UP_SECONDS)
                    self.answer(204, b"")
                elif kind == "failing":
                    self.answer(500, b'{"error":"failing on purpose"}')
                else:
                    self.answer(204, b"")

        self.server = _Server(Handler)
        self.url = f"{self.server.url}/responses"

    def close(self) -> None:
        self._release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Turn:
    started: float
    responses: list[str]


@dataclass
class Part:
    """One part of the run: the healthy client's turns, beside a neighbour of one kind or none."""

    kind: str
    turns: list[Turn] = field(default_factory=list)
    posts: list[float] = field(default_factory=list)
    """The healthy client's POST /messages, until answered."""
    refused: Counter[int] = field(default_factory=Counter)
    """The healthy client's POST /messages answered otherwise than 200, by status (0: no answer in 30 s)."""
    late: int = 0
    """Turns whose responses had not all come after TURN_TIMEOUT."""
    neighbour_sent: Counter[int] = field(default_factory=Counter)
    """The neighbour's POST /messages by the status it was answered (0: no answer)."""
    neighbour_posts: int = 0
    """The POSTs its receiver took (none when it refuses)."""
    backlog_before: int = 0
    """Messages in the delivery queue when the part began."""
    stack_cores: float = math.nan
    """The CPU the stack's processes (moto, the stack, the functions' containers) took while the turns ran, in
    cores: a neighbour whose average load is the control's, but whose ratio is not, costs in bursts."""


class Neighbour:
    """A client of its own, sending to the relay while the healthy client's turns run."""

    def __init__(self, api_url: str, kind: str, part: Part, conversations: int = NEIGHBOUR_CONVERSATIONS) -> None:
        self.receiver = NeighbourReceiver(kind)
        self._conversations = conversations
        self.client_id = f"neighbour-{kind}"
        self._token = create_client(api_url, self.client_id, self.receiver.url)
        self._flooding = kind.startswith("flooding")
        self._jitter = FLOOD_JITTER_SECONDS if kind == "flooding-jittered" else 0.0
        if self._flooding:
            relay_clients(api_url, "set-rate", self.client_id, str(FLOOD_RATE))
        self._api_url = api_url
        self._part = part
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=(index,), daemon=True)
            for index in range(FLOOD_THREADS if self._flooding else 1)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop sending, then switch the client off as an operator would, disabled and without a response URL: what
        it left in the delivery queue is dropped rather than tried (once the functions' cached client records
        expire), and its parked endpoint is no longer probed, so the next part meets as little of it as can be."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._part.neighbour_posts = self.receiver.posts
        relay_clients(self._api_url, "disable", self.client_id)
        relay_clients(self._api_url, "set-url", self.client_id, "--none")

    def _send(self, index: int) -> None:
        with ThreadPoolExecutor(4) as pool:  # every 0.5 s even while an answer is slow
            started, number = time.monotonic(), 0
            while not self._stop.is_set():
                conversation = f"n{(index + number) % self._conversations}"
                text = f"{self.client_id}-{index}-{number}"
                if self._flooding:
                    if retry_after := self._post(conversation, text):  # a 429's Retry-After, as told
                        self._stop.wait(retry_after + random.uniform(0, self._jitter))  # noqa: S311 - not a secret
                else:
                    pool.submit(self._post, conversation, text)
                    self._stop.wait(started + (number + 1) * NEIGHBOUR_INTERVAL - time.monotonic())
                number += 1

    def _post(self, conversation: str, text: str) -> float:
        """POST the message; the seconds its answer says to wait before the next (its Retry-After), else 0."""
        wait = 0.0
        try:
            answer = _http.request(
                "POST",
                f"{self._api_url}/messages",
                json=message(conversation, text),
                headers={"authorization": f"Bearer {self._token}"},
            )
            status = answer.status
            wait = float(answer.headers.get("retry-after", 0))
        except urllib3.exceptions.HTTPError:
            status = 0
        with self._lock:
            self._part.neighbour_sent[status] += 1
        return wait


class NeighbourProcess:
    """A Neighbour in a process of its own, as another client is on a machine of its own: in this one its threads
    (a flood's dozen) and its receiver took the interpreter's lock from the healthy client's turns, their timing
    and its receiver, and what they measured was partly the bench itself. It shares the cores, as every part does."""

    def __init__(self, api_url: str, kind: str, part: Part, conversations: int = NEIGHBOUR_CONVERSATIONS) -> None:
        self.client_id = f"neighbour-{kind}"
        self.kind = kind
        self.receiver_posts = 0
        self._part = part
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: this one runs threads
        self._connection, theirs = spawn.Pipe()
        self._process = spawn.Process(target=_neighbour, args=(api_url, kind, conversations, theirs), daemon=True)
        self._process.start()
        assert self._connection.recv() == "ready"  # its client made

    def start(self) -> None:
        self._connection.send("start")

    def stop(self) -> None:
        self._connection.send("stop")
        sent, self._part.neighbour_posts = self._connection.recv()
        self._part.neighbour_sent.update(sent)

    def close(self) -> None:
        """At the run's end: its receiver lets go of what it holds (a hanging one's requests) and stops."""
        if self._process.is_alive():
            self._connection.send("close")
            self.receiver_posts = self._connection.recv()
            self._process.join(30)


def _neighbour(api_url: str, kind: str, conversations: int, connection: Connection) -> None:
    """A NeighbourProcess's own side: the Neighbour, told when to start, stop and close."""
    part = Part(kind)
    neighbour = Neighbour(api_url, kind, part, conversations)
    connection.send("ready")
    assert connection.recv() == "start"
    neighbour.start()
    assert connection.recv() == "stop"
    neighbour.stop()
    connection.send((dict(part.neighbour_sent), part.neighbour_posts))
    assert connection.recv() == "close"
    neighbour.receiver.close()
    connection.send(neighbour.receiver.posts)


def create_client(api_url: str, client_id: str, response_url: str) -> str:
    """A new client, made as a user would with `relay-clients --dev create`; its bearer token."""
    created = relay_clients(api_url, "create", "--id", client_id, "--name", client_id, "--response-url", response_url)
    token = re.search(r"bearer token:\s+(\S+)", created)
    assert token, created
    return token.group(1)


def relay_clients(api_url: str, *arguments: str) -> str:
    """`relay-clients --dev ...` on the stack serving `api_url`; its output."""
    done = subprocess.run(  # noqa: S603 - the project's own command
        [str(RELAY_CLIENTS), "--dev", *arguments],
        cwd=ROOT,
        env={**os.environ, "PORT": api_url.rsplit(":", 1)[1]},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"relay-clients --dev {arguments[0]}: exit {done.returncode}: {done.stderr}")
    return done.stdout


class DeliveryQueue:
    """The local stack's delivery queue, found as `relay-clients --dev` finds it."""

    def __init__(self, api_url: str) -> None:
        local = dev.LocalStack.model_validate_json(dev.state_file(ROOT, int(api_url.rsplit(":", 1)[1])).read_text())
        self._url = local.outputs["DeliveryQueueUrl"]
        self._sqs = boto3.client(
            "sqs",
            endpoint_url=local.endpoint_url,
            region_name=local.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's, not a secret
        )

    def size(self) -> int:
        """Its messages, waiting or in flight (held ones among them)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=names)["Attributes"]
        return sum(int(attributes[name]) for name in names)

    def settle(self, seconds: float) -> int:
        """Wait until it is empty, at most `seconds`; what is left."""
        deadline = time.monotonic() + seconds
        while (left := self.size()) and time.monotonic() < deadline:
            time.sleep(1)
        return left


class Healthy:
    """The healthy client: its turns, and every response its receiver must get, per conversation in order."""

    def __init__(self, api_url: str, receiver: Receiver) -> None:
        self._api_url = api_url
        self._receiver = receiver
        self.expected: dict[str, list[str]] = {}
        """Each conversation's responses in the order the bot sends them."""

    def turns(self, part: Part, label: str, turns: int, gap: float) -> None:
        with ThreadPoolExecutor(CONVERSATIONS) as pool:
            list(pool.map(lambda c: self._conversation(part, f"h{c}", label, turns, gap), range(CONVERSATIONS)))

    def _conversation(self, part: Part, conversation: str, label: str, turns: int, gap: float) -> None:
        # Spread over the gap, not all at once: six turns together queued behind one another for the API's
        # containers, and the slowest of that burst was every part's p95 (module docstring).
        time.sleep(int(conversation.removeprefix("h")) * gap / CONVERSATIONS)
        for number in range(turns):
            if number:
                time.sleep(gap)
            text = f"{label}-{conversation}-{number}"
            turn = Turn(time.perf_counter(), [f"{text}/{n}" for n in range(1, RESPONSES + 1)])
            part.turns.append(turn)
            try:
                status = _http.request(
                    "POST",
                    f"{self._api_url}/messages",
                    json=message(conversation, text),
                    headers={"authorization": f"Bearer {CLIENT_TOKEN}"},
                ).status
            except urllib3.exceptions.HTTPError:
                status = 0
            part.posts.append(time.perf_counter() - turn.started)
            if status != 200:  # not accepted (or not known to be): its responses are not expected, the turn failed
                part.refused[status] += 1
                continue
            self.expected.setdefault(conversation, []).extend(turn.responses)
            try:
                self._receiver.wait_for(turn.responses, TURN_TIMEOUT)
            except RuntimeError:
                part.late += 1

    def latencies(self, part: Part) -> list[float]:
        """Each turn's, from its POST to its last response's arrival; infinite for one whose POST failed or whose
        responses never came."""
        arrived = self._receiver.arrived
        return [
            max(arrived[text] for text in turn.responses) - turn.started
            if all(text in arrived for text in turn.responses)
            else math.inf
            for turn in part.turns
        ]

    def wait_for_all(self, seconds: float) -> None:
        with contextlib.suppress(RuntimeError):  # what has not come by then is counted lost
            self._receiver.wait_for([text for texts in self.expected.values() for text in texts], seconds)

    def lost_and_disordered(self) -> tuple[int, list[str]]:
        """How many responses never came, and the conversations whose responses came in another order."""
        arrived = self._receiver.arrived
        lost = sum(text not in arrived for texts in self.expected.values() for text in texts)
        disordered = [
            conversation
            for conversation, texts in self.expected.items()
            if [text for text in self._receiver.order.get(conversation, []) if text in texts]
            != [text for text in texts if text in arrived]
        ]
        return lost, disordered


def run_part(
    kind: str,
    api_url: str,
    healthy: Healthy,
    deliveries: DeliveryQueue,
    neighbours: list[NeighbourProcess],
    stack: int,
) -> Part:
    """One part; `stack` is the stack's session (the process id it was started with)."""
    part = Part(kind)
    part.backlog_before = deliveries.settle(SETTLE_SECONDS)
    label = kind.replace(" ", "-")
    if kind.startswith("baseline"):
        with _cores(stack, part):
            healthy.turns(part, label, TURNS, TURN_GAP)
        return part
    neighbour = NeighbourProcess(api_url, kind, part)
    neighbours.append(neighbour)
    neighbour.start()
    try:
        time.sleep(NEIGHBOUR_LEAD)
        with _cores(stack, part):
            healthy.turns(part, label, TURNS, TURN_GAP)
    finally:
        neighbour.stop()
    return part


@contextlib.contextmanager
def _cores(session: int, part: Part) -> Iterator[None]:
    """The part's stack_cores, over the block (the stack's containers live as long as it does)."""
    used, started = _cpu_seconds(session), time.monotonic()
    yield
    part.stack_cores = (_cpu_seconds(session) - used) / (time.monotonic() - started)


def _cpu_seconds(session: int) -> float:
    return sum(seconds for _, seconds in session_cpu_seconds(session).values())


def warm_up(api_url: str, healthy: Healthy, neighbours: list[NeighbourProcess]) -> None:
    """Bring each function to the containers a part needs. A neighbour whose receiver takes WARM_UP_SECONDS to answer
    sends over as many conversations as the healthy client and a neighbour have together, so that delivery runs an
    execution for each at once, as it does beside a hanging or slow receiver. A container's first request imports
    the handler: deployed, that init runs in an execution environment of its own, here on the cores every function
    shares, so the parts measure a neighbour beside warm containers."""
    part = Part("warm-up")
    neighbour = NeighbourProcess(api_url, "warm-up", part, CONVERSATIONS + NEIGHBOUR_CONVERSATIONS)
    neighbours.append(neighbour)
    neighbour.start()
    try:
        healthy.turns(part, "warm", 3, TURN_GAP)
    finally:
        neighbour.stop()


def main() -> None:
    log_path = Path(os.environ.get("ISOLATION_LOG") or tempfile.mkstemp(prefix="isolation-stack-", suffix=".log")[1])
    bot, receiver = Bot(), Receiver()
    parts: list[Part] = []
    neighbours: list[NeighbourProcess] = []
    started = time.monotonic()
    with log_path.open("w", buffering=1) as log:
        process, api_url = start_stack(bot, receiver, log)
        try:
            healthy = Healthy(api_url, receiver)
            deliveries = DeliveryQueue(api_url)
            warm_up(api_url, healthy, neighbours)
            for kind in ("baseline", *KINDS, "baseline again"):
                parts.append(run_part(kind, api_url, healthy, deliveries, neighbours, process.pid))
                print(f"  ... {kind} done after {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            healthy.wait_for_all(FINAL_WAIT)
            for neighbour in neighbours:
                neighbour.close()
            report(parts, neighbours, healthy, bot, log_path, time.monotonic() - started)
        finally:
            for neighbour in neighbours:
                neighbour.close()
            stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """Stop the stack as Ctrl-C does, with SIGTERM: a background job ignores SIGINT, and so would the stack."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def report(
    parts: list[Part], neighbours: list[NeighbourProcess], healthy: Healthy, bot: Bot, log_path: Path, seconds: float
) -> None:
    # The reference: both baselines' turns together, the healthy client alone at the run's start and at its end, so
    # that neither the first few parts nor the last are compared with a machine that has drifted since.
    alone = [part for part in parts if part.kind.startswith("baseline")]
    base = [latency for part in alone for latency in healthy.latencies(part)]
    alone_posts = [post for part in alone for post in part.posts]
    base50, base95, base_post = statistics.median(base), percentile(base, 0.95), percentile(alone_posts, 0.95)
    print(
        f"isolation, local stack: the healthy client's turn (its POST /messages until its {RESPONSES}rd response"
        f" reaches its receiver), {CONVERSATIONS} conversations x {TURNS} turns {TURN_GAP:g} s apart, per neighbour;"
        f" ratios to the baselines (alone, first and last) of this run together; goal: p95 <= {GOAL}x"
    )
    print(
        f"  {'neighbour':17} {'p50':>8} {'p95':>8}  {'p50 ratio':>9} {'p95 ratio':>9} {'goal':>4} {'POST p95':>8}"
        f" {'p95/busy':>8} {'stack CPU':>9}  the neighbour's POST /messages answered / its receiver took"
    )
    # The busy control's traffic with a receiver that answers at once: what is left of a kind's ratio beside it is
    # the cost of its receiver's trouble, not of a second client's traffic on the same cores.
    busy95 = next((percentile(healthy.latencies(p), 0.95) for p in parts if p.kind == "busy"), math.nan)
    for part in parts:
        latencies = healthy.latencies(part)
        p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
        goal = "-" if part in alone else "yes" if p95 <= GOAL * base95 else "NO"
        answered = ", ".join(f"{n} x {status or 'none'}" for status, n in sorted(part.neighbour_sent.items()))
        notes = [f"{answered} / {part.neighbour_posts} POSTs"] if part.neighbour_sent else ["-"]
        if part.refused:
            refused = ", ".join(f"{n} x {status or 'none'}" for status, n in sorted(part.refused.items()))
            notes.append(f"the healthy client's POST /messages answered {refused}")
        if part.late:
            notes.append(f"{part.late} turns late over {TURN_TIMEOUT:.0f} s")
        if part.backlog_before:
            notes.append(f"{part.backlog_before} in the delivery queue at its start")
        print(
            f"  {part.kind:17} {_ms(p50)} {_ms(p95)}  {p50 / base50:>8.2f}x {p95 / base95:>8.2f}x {goal:>4}"
            f" {percentile(part.posts, 0.95) / base_post:>7.2f}x {p95 / busy95:>7.2f}x {part.stack_cores:>5.2f} cores"
            f"  {'; '.join(notes)}"
        )
    lost, disordered = healthy.lost_and_disordered()
    expected = sum(len(texts) for texts in healthy.expected.values())
    print(
        f"  healthy client: {expected - lost} of {expected} responses arrived ({lost} lost;"
        f" {bot.refused.get(HEALTHY, 0)} refused to the bot); conversations whose responses came out of order:"
        f" {len(disordered)}{' (' + ', '.join(disordered) + ')' if disordered else ''}"
    )
    posts = ", ".join(f"{n.client_id} {n.receiver_posts}" for n in neighbours if n.kind != "refusing")
    print(f"  POSTs each neighbour's receiver took in the whole run: {posts}")
    print(f"  {seconds:.0f} s in all; the stack's output: {log_path}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:>5.0f} ms" if math.isfinite(seconds) else "    lost"


if __name__ == "__main__":
    main()
