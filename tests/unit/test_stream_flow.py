"""The stream's catch-up, with in-memory parts: every connection gets every response newer than its watermark,
once, in the log's order, whatever order records, looks for connections, connects, connection set-ups and nudges
happen in."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from relay.adapters.connections_api import FRAME_MAX_BYTES, ConnectionGone
from relay.conversation_tokens import ConversationGrant, ConversationTokens
from relay.edge import stream_api
from relay.edge.access import Access
from relay.errors import Unauthorized
from relay.flows.recording import nudge_if_streamed
from relay.flows.stream import CONNECTING_RETRY_DELAYS, CONNECTING_SECONDS, Stream
from relay.flows.stream_socket import StreamSocket
from relay.models import StreamNudge, scoped
from relay.observability import logger, metrics
from relay.stores.clients import Credentials
from relay.stores.connections import Connection
from relay.stores.responses_log import Recorded
from relay.watermarks import Watermarks

CLIENT, CONVERSATION, USER = "acme", "order-42", "alice"


@pytest.fixture(autouse=True)
def metrics_flushed_as_in_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The template sets the namespace; a hundred metrics are flushed with it, as a long invocation would."""
    monkeypatch.setattr(metrics.provider, "namespace", "MessagingRelay")
    yield
    metrics.clear_metrics()


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No INFO lines: an order test plays 1,260 orders, and formatting their lines (and pytest's capture of them)
    took half its time."""
    caplog.set_level(logging.WARNING, logger=logger.name)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class MemoryLog:
    """The responses log: growing positions per conversation, as the log's FIFO queue numbers them."""

    def __init__(self) -> None:
        self.entries: dict[str, list[Recorded]] = {}
        self._next = itertools.count(10_000_000_000_000_000_000, 7919)

    def record(self, text: str, conversation: str = CONVERSATION, message_id: str = "") -> Recorded:
        body = json.dumps(
            {
                "type": "text",
                "payload": {"text": text},
                "conversationId": conversation,
                "botpressMessageId": message_id or f"bp-{text}",
                "clientId": CLIENT,
                "userId": USER,
            },
            separators=(",", ":"),
        )
        entry = Recorded(next(self._next), 0.0, body)
        self.entries.setdefault(scoped(CLIENT, conversation), []).append(entry)
        return entry

    def after(self, client_id: str, conversation_id: str, position: int, limit: int) -> list[Recorded]:
        """As a DynamoDB query: at most `limit`, and ended once it has read 1 MB."""
        found, read = [], 0
        for entry in self.entries.get(scoped(client_id, conversation_id), []):
            if entry.position > position and len(found) < limit and read < 1024 * 1024:
                found.append(entry)
                read += len(entry.body.encode())
        return found

    def last_position(self, client_id: str, conversation_id: str) -> int:
        entries = self.entries.get(scoped(client_id, conversation_id), [])
        return entries[-1].position if entries else 0


class MemoryConnections:
    def __init__(self) -> None:
        self.items: dict[str, Connection] = {}

    def open(self, connection: Connection) -> None:
        self.items[connection.connection_id] = connection

    def of_conversation(self, client_id: str, conversation_id: str) -> list[Connection]:
        return [c for c in self.items.values() if (c.client_id, c.conversation_id) == (client_id, conversation_id)]

    def any_open(self, client_id: str, conversation_id: str) -> bool:
        return bool(self.of_conversation(client_id, conversation_id))

    def advance(self, connection: Connection, cursor: int) -> Connection:
        if connection.connection_id in self.items:
            self.items[connection.connection_id] = replace(connection, cursor=cursor)
        return replace(connection, cursor=cursor)

    def remove(self, connection: Connection) -> None:
        self.items.pop(connection.connection_id, None)

    def close(self, connection_id: str) -> bool:
        return self.items.pop(connection_id, None) is not None


@dataclass
class ConnectionsApi:
    """@connections as API Gateway answers: 410 until a connection's $connect has returned, and once it closed."""

    open: set[str] = field(default_factory=set)
    frames: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gone_answers: int = 0

    def post(self, connection_id: str, frame: bytes) -> None:
        if connection_id not in self.open:
            self.gone_answers += 1
            raise ConnectionGone(connection_id)
        self.frames.setdefault(connection_id, []).append(json.loads(frame))

    def texts(self, connection_id: str) -> list[str]:
        return [frame["response"]["payload"]["text"] for frame in self.frames.get(connection_id, [])]


class Queue:
    """The stream queue: one FIFO group per conversation, handed over one nudge at a time."""

    def __init__(self) -> None:
        self.nudges: list[StreamNudge] = []

    def send(self, client_id: str, conversation_id: str, deduplication_id: str) -> None:
        self.nudges.append(StreamNudge(client_id=client_id, conversation_id=conversation_id))


class Clients:
    def __init__(self) -> None:
        self.disabled: set[str] = set()

    def authenticate(self, token: str) -> Credentials:
        raise Unauthorized("invalid client token")

    def enabled(self, client_id: str) -> Credentials:
        if client_id in self.disabled:
            raise Unauthorized(f"client '{client_id}' is disabled")
        return Credentials(client_id=client_id, token_hash="x")


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.log = MemoryLog()
        self.connections = MemoryConnections()
        self.api = ConnectionsApi()
        self.queue = Queue()
        self.clients = Clients()
        self.tokens = ConversationTokens(lambda: "token-key", clock=self.clock)
        self.watermarks = Watermarks(lambda: "watermark-key")
        self.access = Access(self.clients, self.tokens)
        self.socket = StreamSocket(self.connections, self.log, self.watermarks, self.queue, clock=self.clock)
        self.stream = Stream(
            self.log, self.connections, self.api, self.watermarks, self.queue, clock=self.clock, sleep=self.clock.sleep
        )

    def token(self, conversation: str = CONVERSATION) -> str:
        return self.tokens.issue(ConversationGrant.starting(CLIENT, conversation, USER, 3600, self.clock()))

    def record(self, text: str, message_id: str = "") -> Recorded:
        """The responses log function: write, then look for connections."""
        entry = self.log.record(text, message_id=message_id)
        self.look(entry)
        return entry

    def look(self, entry: Recorded) -> None:
        """The responses log function after its write: a nudge if the conversation has a connection."""
        nudge_if_streamed(self.connections, self.queue, CLIENT, CONVERSATION, f"log-{entry.position}")

    def watermark(self, text: str) -> str:
        (entry,) = [e for e in self.log.entries[scoped(CLIENT, CONVERSATION)] if f'"{text}"' in e.body]
        return self.watermarks.issue(CLIENT, CONVERSATION, entry.position)

    def connect(self, connection_id: str, after: str | None = None) -> None:
        """$connect: the handler runs; the connection is not open to posts until `established`."""
        assert self.route("$connect", connection_id, {"token": self.token(), "after": after or ""}) == {
            "statusCode": 200
        }

    def route(self, route_key: str, connection_id: str, parameters: dict[str, str] | None = None) -> dict[str, Any]:
        """What the handler answers API Gateway."""
        event = {
            "requestContext": {"routeKey": route_key, "connectionId": connection_id},
            "queryStringParameters": parameters,
        }
        return stream_api.route(self.access, self.socket, event)

    def refusal(self, parameters: dict[str, str] | None) -> tuple[int, str]:
        """The status and message $connect is refused with."""
        answer = self.route("$connect", "A", parameters)
        return answer["statusCode"], json.loads(answer["body"])["message"]

    def established(self, connection_id: str) -> None:
        self.api.open.add(connection_id)

    def deliver_one(self) -> None:
        if self.queue.nudges:
            nudge = self.queue.nudges.pop(0)
            self.stream.nudged(nudge.client_id, nudge.conversation_id)

    def drain(self) -> None:
        for _ in range(100):
            if not self.queue.nudges:
                return
            self.deliver_one()
        raise AssertionError("the stream keeps nudging itself")


def orderings(records: int, others: list[str]) -> Iterator[tuple[str, ...]]:
    """Every distinct order of `records` writes, each followed by its look before the next write (the responses
    log function takes a conversation's responses one at a time), among the `others`, in which the connection
    is established after its $connect."""
    steps = ["write", "look"] * records
    slots = len(steps) + len(others)
    for places in itertools.combinations(range(slots), len(steps)):
        for rest in sorted(set(itertools.permutations(others))):
            if rest.index("connect") < rest.index("established"):
                order, writes, rest_iter = [], iter(steps), iter(rest)
                for slot in range(slots):
                    order.append(next(writes) if slot in places else next(rest_iter))
                yield tuple(order)


BURST = (3, ["connect", "established", "deliver", "deliver"])


def run(world: World, order: tuple[str, ...], after: str | None) -> tuple[list[str], list[str]]:
    """Play `order` (each write records the next response, r3, r4, …, and its look nudges if it sees the
    connection), then a live response, r6. Returns what was recorded before the $connect, and what the
    connection had before r6."""
    recorded, before_connect, written = itertools.count(3), [], []
    for step in order:
        if step == "write":
            text = f"r{next(recorded)}"
            written.append(world.log.record(text))
            if "A" not in world.connections.items:
                before_connect.append(text)
        elif step == "look":
            world.look(written[-1])
        elif step == "connect":
            world.connect("A", after=after)
        elif step == "established":
            world.established("A")
        else:
            world.deliver_one()
    world.drain()  # the catch-up is complete without waiting for the bot's next response
    caught_up = world.api.texts("A")
    world.record("r6")
    world.drain()
    return before_connect, caught_up


def burst() -> World:
    """A conversation with two responses, r1 and r2, already streamed (to nobody)."""
    world = World()
    world.record("r1")
    world.record("r2")
    world.drain()
    return world


@pytest.mark.usefixtures("quiet")
def test_a_connection_opened_with_after_in_the_middle_of_a_burst_gets_every_newer_response_once_in_order() -> None:
    wrong = {}
    for order in orderings(*BURST):
        world = burst()
        _, caught_up = run(world, order, after=world.watermark("r1"))
        if (caught_up, world.api.texts("A")) != (["r2", "r3", "r4", "r5"], ["r2", "r3", "r4", "r5", "r6"]):
            wrong["-".join(order)] = world.api.texts("A")
    assert not wrong, f"{len(wrong)} orders went wrong, such as {next(iter(wrong.items()))}"


@pytest.mark.usefixtures("quiet")
def test_a_connection_opened_without_after_gets_every_response_recorded_after_its_connect_once_in_order() -> None:
    wrong = {}
    for order in orderings(*BURST):
        world = burst()
        before_connect, caught_up = run(world, order, after=None)
        expected = [text for text in ("r3", "r4", "r5") if text not in before_connect]
        if (caught_up, world.api.texts("A")) != (expected, [*expected, "r6"]):
            wrong["-".join(order)] = (world.api.texts("A"), expected)
    assert not wrong, f"{len(wrong)} orders went wrong, such as {next(iter(wrong.items()))}"


def test_several_connections_of_one_conversation_each_get_every_frame_from_their_own_watermark() -> None:
    world = World()
    for text in ("r1", "r2", "r3"):
        world.record(text)
    world.drain()
    world.connect("tab-1", after=world.watermark("r1"))
    world.connect("tab-2", after=world.watermark("r2"))
    world.connect("phone")
    world.record("r4")
    for connection in ("tab-1", "tab-2", "phone"):
        world.established(connection)
    world.drain()
    world.record("r5")
    world.drain()

    assert world.api.texts("tab-1") == ["r2", "r3", "r4", "r5"]
    assert world.api.texts("tab-2") == ["r3", "r4", "r5"]
    assert world.api.texts("phone") == ["r4", "r5"]


def test_each_frame_carries_the_webhook_id_the_body_as_logged_and_a_watermark_to_go_on_from() -> None:
    world = World()
    world.connect("A")
    world.established("A")
    world.record("r1")
    world.record("r2")
    world.drain()

    first, second = world.api.frames["A"]
    (entry, _) = world.log.entries[scoped(CLIENT, CONVERSATION)]
    assert first["event"] == "response" and first["id"] == "msg_bp-r1"
    assert first["response"] == json.loads(entry.body)
    # A watermark of a frame, passed back as `after`, continues right after that frame.
    world.connect("B", after=first["watermark"])
    world.established("B")
    world.drain()
    assert world.api.texts("B") == ["r2"]
    assert [f["id"] for f in world.api.frames["B"]] == [second["id"]]


def test_a_gone_connection_is_removed_and_the_others_go_on() -> None:
    world = World()
    for connection in ("A", "B", "C"):
        world.connect(connection)
        world.established(connection)
    world.drain()
    world.clock.now += CONNECTING_SECONDS + 1
    world.api.open.discard("B")  # closed without its $disconnect reaching us

    world.record("r1")
    world.drain()

    assert world.api.texts("A") == world.api.texts("C") == ["r1"]
    assert set(world.connections.items) == {"A", "C"}
    assert world.clock.slept == []  # a gone connection is not retried


def test_a_connection_still_connecting_is_retried_briefly_then_nudged_again_and_loses_nothing() -> None:
    world = World()
    world.record("r1")
    world.drain()
    world.connect("A", after=world.watermarks.issue(CLIENT, CONVERSATION, 0))

    world.deliver_one()  # $connect has not returned yet: every post answers 410

    assert world.api.gone_answers == len(CONNECTING_RETRY_DELAYS) + 1
    assert world.clock.slept == list(CONNECTING_RETRY_DELAYS)
    assert "A" in world.connections.items and len(world.queue.nudges) == 1
    world.established("A")
    world.drain()
    assert world.api.texts("A") == ["r1"]


def test_a_catch_up_longer_than_a_page_is_sent_whole() -> None:
    world = World()
    texts = [f"r{n}" for n in range(250)]
    for text in texts:
        world.log.record(text)
    world.connect("A", after=world.watermarks.issue(CLIENT, CONVERSATION, 0))
    world.established("A")
    world.drain()

    assert world.api.texts("A") == texts


def test_a_catch_up_longer_than_a_megabyte_query_is_sent_whole() -> None:
    world = World()
    for n in range(12):
        world.log.record(f"{n:02}" + "é" * 100_000, message_id=f"bp-{n}")  # 200 KB each, as UTF-8
    world.connect("A", after=world.watermarks.issue(CLIENT, CONVERSATION, 0))
    world.established("A")
    world.drain()

    assert [frame["id"] for frame in world.api.frames["A"]] == [f"msg_bp-{n}" for n in range(12)]


def test_a_response_too_large_for_one_post_is_announced_with_the_watermark_to_read_it_from() -> None:
    world = World()
    world.connect("A")
    world.established("A")
    world.record("r1")
    world.drain()
    big = world.record("x" * FRAME_MAX_BYTES, message_id="bp-big")
    world.drain()
    world.record("r3")
    world.drain()

    small, announced, after = world.api.frames["A"]
    assert announced["event"] == "too-large" and set(announced) == {"event", "id", "watermark", "after"}
    assert announced["after"] == small["watermark"]
    assert world.watermarks.read(announced["watermark"], CLIENT, CONVERSATION) == big.position
    assert after["response"]["payload"]["text"] == "r3"


# ── $connect, $disconnect, $default ──


def test_connect_refuses_a_missing_forged_expired_or_client_token_and_a_bad_after() -> None:
    world = World()
    forged = world.token()[:-2] + "AA"
    other = world.watermarks.issue(CLIENT, "another-conversation", 1)
    assert world.refusal(None) == (401, "missing token: open the streamUrl of a token answer as it is")
    status, said = world.refusal({"token": forged})
    assert status == 401 and "invalid conversation token" in said
    assert world.refusal({"token": "acme.secret"}) == (
        403,
        "a client token cannot do this: use a conversation token (POST …/tokens)",
    )
    status, said = world.refusal({"token": world.token(), "after": other})
    assert status == 400 and said.startswith("query parameter after: ")
    token = world.token()
    world.clock.now += 3601
    status, said = world.refusal({"token": token})
    assert status == 401 and "expired" in said
    assert world.connections.items == {} and world.queue.nudges == []


def test_connect_refuses_the_token_of_a_disabled_client() -> None:
    world = World()
    token = world.token()
    world.clients.disabled.add(CLIENT)

    status, said = world.refusal({"token": token})
    assert status == 401 and "disabled" in said


def test_disconnect_forgets_the_connection_and_a_ping_is_answered() -> None:
    world = World()
    world.connect("A")
    assert world.route("$disconnect", "A") == {"statusCode": 200}
    world.route("$disconnect", "never-seen")

    assert world.connections.items == {}
    default = {"requestContext": {"routeKey": "$default", "connectionId": "A"}, "body": '{"action": "ping"}'}
    assert json.loads(stream_api.route(world.access, world.socket, default)["body"]) == {"event": "pong"}
    assert json.loads(world.socket.message("hello"))["event"] == "error"
