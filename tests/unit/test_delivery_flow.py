"""The delivery flow's decisions, with in-memory stores, a receiver standing in for the HTTP POST and a clock of
the test's own: no AWS, no network, no sleeping. The real path (moto, HTTP) is tests/integration/test_delivery.py.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from memory import MemoryLog
from standardwebhooks import Webhook

from relay import signing
from relay.adapters.outbound import Answer, PostFailed
from relay.adapters.publisher import message_group_id
from relay.adapters.webhook import WebhookSender
from relay.attempts import Attempt, Failure, Skip, Trigger
from relay.deliveries import (
    DeadLetter,
    Decision,
    Done,
    Held,
    ProbeEndpoint,
    QueuedResponse,
    RecoverJob,
    Release,
    Result,
    ResumeParked,
    Retry,
    StopConversation,
    probe_body,
)
from relay.endpoints import PARKING, EndpointState, ProbeClaim
from relay.flows.delivery import ATTEMPT_RESERVE_SECONDS, Delivery
from relay.models import Client, ClientResponse
from relay.operations import (
    ConversationStopped,
    EndpointDisabled,
    EndpointFailing,
    EndpointParked,
    EndpointRecovered,
    OperationalEvent,
)
from relay.settings import DeliverySettings
from relay.stores.clients import TransactItem
from relay.stores.delivery_state import Park, Stop

SCHEDULE = (5, 300, 1800)
MAX_ATTEMPTS = 4
HOLD_SECONDS = 65
WEBHOOK_TIMEOUT_SECONDS = 1.0
URL = "https://acme.example/hook"


# ── the flow's surroundings, in memory ──


class Clock:
    """Seconds since the epoch, moved on by the test (or by the receiver, for the time its answers take)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:  # as the responses log stamps what it records
        return self.now


class MemoryClients:
    """The clients store: records by id; a transaction item is a change of the count of stopped conversations."""

    def __init__(self, *clients: Client) -> None:
        self.records = {client.client_id: client for client in clients}

    def get(self, client_id: str) -> Client | None:
        return self.records.get(client_id)

    def forget(self, client_id: str) -> None:
        pass  # nothing cached

    def switch_off_url(self, client_id: str) -> None:
        self._update(client_id, response_url_off=True)

    def open_endpoint(self, client_id: str, since: datetime, open_until: datetime, reason: str) -> None:
        record = self.records[client_id]
        self._update(
            client_id,
            endpoint_state=EndpointState.OPEN,
            endpoint_since=record.endpoint_since or since,
            endpoint_open_until=open_until,
            endpoint_reason=reason,
        )

    def claim_probe(self, client_id: str, now: datetime, open_until: datetime) -> ProbeClaim:
        current = self.records[client_id].endpoint_open_until
        if current is None or current > now:
            return ProbeClaim(ours=False, open_until=current)
        self._update(client_id, endpoint_open_until=open_until)
        return ProbeClaim(ours=True)

    def close_endpoint(self, client_id: str) -> None:
        self._update(
            client_id,
            endpoint_state=EndpointState.HEALTHY,
            endpoint_since=None,
            endpoint_open_until=None,
            endpoint_reason=None,
        )

    def stop_counted(self, client_id: str) -> TransactItem:
        return {"client": client_id, "stops": 1}

    def stop_uncounted(self, client_id: str) -> TransactItem:
        return {"client": client_id, "stops": -1}

    def park_endpoint(self, client_id: str, state: EndpointState, now: datetime, reason: str) -> bool:
        record = self.records[client_id]
        if record.endpoint_state not in (EndpointState.OPEN, EndpointState.PARKED) or record.endpoint_state is state:
            return False
        parked_at = record.endpoint_parked_at or now
        self._update(client_id, endpoint_state=state, endpoint_parked_at=parked_at, endpoint_reason=reason)
        return True

    def parked_counted(self, client_id: str) -> TransactItem:
        return {"client": client_id, "parked": 1, "while_parking": True}

    def parked_uncounted(self, client_id: str) -> TransactItem:
        return {"client": client_id, "parked": -1}

    def commit(self, item: TransactItem) -> bool:
        record = self.records[item["client"]]
        if item.get("while_parking") and record.endpoint_state not in PARKING:
            return False
        self._update(
            item["client"],
            stopped_conversations=record.stopped_conversations + item.get("stops", 0),
            parked_conversations=record.parked_conversations + item.get("parked", 0),
        )
        return True

    def _update(self, client_id: str, **changes: Any) -> None:
        self.records[client_id] = self.records[client_id].model_copy(update=changes)


class MemoryState:
    """The delivery state store: attempt counters and stops, each stop counted on its client in one step."""

    def __init__(self, clients: MemoryClients) -> None:
        self._clients = clients
        self.attempts: Counter[str] = Counter()
        self.stops: dict[tuple[str, str], Stop] = {}
        self.parks: dict[tuple[str, str], Park] = {}

    def count_failed_attempt(self, webhook_id: str) -> int:
        self.attempts[webhook_id] += 1
        return self.attempts[webhook_id]

    def failed_attempts(self, webhook_id: str) -> int:
        return self.attempts[webhook_id]

    def forget_attempts(self, webhook_ids: Sequence[str]) -> None:
        for webhook_id in webhook_ids:
            self.attempts.pop(webhook_id, None)

    def stop(self, client_id: str, conversation_id: str, webhook_id: str, counted: TransactItem) -> None:
        if (client_id, conversation_id) not in self.stops:
            self.stops[client_id, conversation_id] = Stop(webhook_id, dead_lettered=False)
            self._clients.commit(counted)

    def stop_of(self, client_id: str, conversation_id: str) -> Stop | None:
        return self.stops.get((client_id, conversation_id))

    def mark_dead_lettered(self, client_id: str, conversation_id: str) -> None:
        self.stops[client_id, conversation_id] = Stop(self.stops[client_id, conversation_id].webhook_id, True)

    def resume(self, client_id: str, conversation_id: str, webhook_id: str, uncounted: TransactItem) -> None:
        if self.stops.pop((client_id, conversation_id), None) is not None:
            self.attempts.pop(webhook_id, None)
            self._clients.commit(uncounted)

    def park(self, client_id: str, conversation_id: str, webhook_id: str, counted: TransactItem) -> bool:
        key = (client_id, conversation_id)
        if key in self.parks:
            self.parks[key] = dataclasses.replace(self.parks[key], last=webhook_id)
            return True
        if not self._clients.commit(counted):
            return False
        self.parks[key] = Park(webhook_id, webhook_id)
        return True

    def park_of(self, client_id: str, conversation_id: str) -> Park | None:
        return self.parks.get((client_id, conversation_id))

    def advance_park(self, client_id: str, conversation_id: str, through: str) -> None:
        key = (client_id, conversation_id)
        self.parks[key] = dataclasses.replace(self.parks[key], through=through)

    def unpark(self, client_id: str, conversation_id: str, last: str, uncounted: TransactItem) -> None:
        if (park := self.parks.get((client_id, conversation_id))) is not None and park.last == last:
            del self.parks[client_id, conversation_id]
            self._clients.commit(uncounted)

    def parked(self, client_id: str) -> list[str]:
        return [conversation for client, conversation in self.parks if client == client_id]


@dataclass
class Post:
    url: str
    body: str
    headers: dict[str, str]
    thread: threading.Thread

    @property
    def text(self) -> str:
        return str(json.loads(self.body)["payload"]["text"])


@dataclass
class Receiver:
    """The client's webhook as the sender's `exchange`: records each POST and answers it as scripted (204 unless
    told otherwise), taking `takes` seconds of the clock for each."""

    clock: Clock
    takes: float = 0.0
    posts: list[Post] = field(default_factory=list)
    script: dict[str, list[Answer | PostFailed]] = field(default_factory=dict)
    meeting: threading.Barrier | None = None
    takes_at: dict[str, float] = field(default_factory=dict)
    """Seconds the POSTs to a URL take, where not `takes`."""
    before: dict[str, Callable[[], None]] = field(default_factory=dict)
    """Called before answering the POST of a text: a receiver that waits for something."""
    down: set[str] = field(default_factory=set)
    """URLs whose receiver answers 500 to everything."""

    def answer(self, text: str, *answers: Answer | PostFailed) -> Receiver:
        self.script.setdefault(text, []).extend(answers)
        return self

    def __call__(self, url: str, body: str, headers: dict[str, str], timeout_seconds: float) -> Answer:
        assert timeout_seconds == WEBHOOK_TIMEOUT_SECONDS
        post = Post(url, body, headers, threading.current_thread())
        self.posts.append(post)
        if self.meeting is not None:
            self.meeting.wait()  # every conversation's first POST must be under way at once
        if (wait := self.before.get(post.text)) is not None:
            wait()
        self.clock.now += self.takes_at.get(url, self.takes)
        answers = self.script.get(post.text)
        answer = answers.pop(0) if answers else Answer(500 if url in self.down else 204, {})
        if isinstance(answer, PostFailed):
            raise answer
        return answer

    def texts(self) -> list[str]:
        return [post.text for post in self.posts]


class MemoryAttempts:
    """The attempt log: each write's (client id, attempt) records."""

    def __init__(self) -> None:
        self.writes: list[list[tuple[str, Attempt | Skip]]] = []

    def write(self, records: Sequence[tuple[str, Attempt | Skip]]) -> None:
        self.writes.append(list(records))

    @property
    def records(self) -> list[Attempt]:
        return [attempt for write in self.writes for _, attempt in write if isinstance(attempt, Attempt)]


class MemoryEvents:
    """The operations topic: each event published."""

    def __init__(self) -> None:
        self.published: list[OperationalEvent] = []

    def publish(self, event: OperationalEvent) -> None:
        self.published.append(event)

    def of(self, kind: type[OperationalEvent]) -> list[Any]:
        return [event for event in self.published if isinstance(event, kind)]


class Applied:
    """The queue adapter's `apply`: what it was given, a conversation at a time; `refuse` makes it fail as a
    refusing dead-letter queue."""

    def __init__(self) -> None:
        self.conversations: list[Mapping[str, Decision]] = []
        self.released: list[str] = []
        """The messages whose conversation asked the queue to delete what is done at once."""
        self.refuse = False
        self._lock = threading.Lock()

    def __call__(self, decisions: Mapping[str, Decision], release: bool) -> None:
        if self.refuse and any(isinstance(decision, DeadLetter) for decision in decisions.values()):
            raise RuntimeError("dead-letter queue refused messages")
        with self._lock:
            self.conversations.append(decisions)
            self.released.extend(decisions if release else ())
        self.on_apply(decisions)

    on_apply: Callable[[Mapping[str, Decision]], None] = staticmethod(lambda decisions: None)


class Metrics:
    """Powertools' metrics as the flow uses them: each name's count."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add_metric(self, name: str, unit: Any, value: int) -> None:
        self.counts[name] += value


@dataclass
class MemoryQueue:
    """What the flow puts back on the delivery queue: nudges (a probe as "probe") and a recover's responses."""

    nudged: list[tuple[str, str]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)

    def nudge(self, client_id: str, conversation_ids: Sequence[str]) -> None:
        self.nudged.extend((client_id, conversation) for conversation in conversation_ids)

    def probe_later(self, client_id: str) -> None:
        self.nudged.append((client_id, "probe"))

    def requeue(self, bodies: Sequence[str]) -> None:
        self.requeued.extend(bodies)


@dataclass
class World:
    clock: Clock
    clients: MemoryClients
    state: MemoryState
    receiver: Receiver
    flow: Delivery
    applied: Applied
    metrics: Metrics
    log: MemoryLog
    queue: MemoryQueue
    attempts: MemoryAttempts
    events: MemoryEvents
    deadline: float = float("inf")

    def run(self, *queued: QueuedResponse) -> list[Decision]:
        """One invocation with this batch: the decision for each of its responses, in the batch's order."""
        self.applied.conversations.clear()
        self.applied.released.clear()
        decisions = self.flow.run(queued, self.remaining_ms, self.applied)
        applied = [message_id for conversation in self.applied.conversations for message_id in conversation]
        assert sorted(applied) == sorted(decisions), "the queue is given every decision, once, before the flow ends"
        return [decisions[q.message_id] for q in queued]

    def remaining_ms(self) -> int:
        return int(min(self.deadline - self.clock.now, 900.0) * 1000)

    def client(self, client_id: str = "acme") -> Client:
        record = self.clients.get(client_id)
        assert record is not None
        return record


def assert_(condition: bool, message: str) -> None:
    assert condition, message


def new_client(client_id: str = "acme", **fields: Any) -> Client:
    return Client.model_validate(
        {
            "client_id": client_id,
            "name": f"{client_id} back end",
            "token_hash": "0" * 64,
            "webhook_secret": signing.new_secret(),
            "response_url": URL,
            **fields,
        }
    )


def settings(**overrides: Any) -> DeliverySettings:
    return DeliverySettings.model_validate(
        {
            "clients_table": "clients",
            "delivery_state_table": "state",
            "attempts_table": "attempts",
            "operations_topic_arn": "operations",
            "delivery_queue_url": "queue",
            "dead_letter_queue_url": "dead-letters",
            "webhook_timeout_seconds": WEBHOOK_TIMEOUT_SECONDS,
            "delivery_max_attempts": MAX_ATTEMPTS,
            "delivery_retry_schedule": SCHEDULE,
            "delivery_stop_hold_seconds": HOLD_SECONDS,
            "responses_table": "responses",
            # The breaker has tests of its own: elsewhere it stays out of the way of the schedule's.
            "endpoint_failure_threshold": 1000,
            **overrides,
        }
    )


def world(*clients: Client, takes: float = 0.0, **overrides: Any) -> World:
    clock = Clock(time.time())  # now: standardwebhooks checks a signature's timestamp against the real time
    memory = MemoryClients(*(clients or (new_client(),)))
    state = MemoryState(memory)
    receiver = Receiver(clock, takes)
    sender = WebhookSender(WEBHOOK_TIMEOUT_SECONDS, receiver, clock)
    metrics = Metrics()
    log = MemoryLog(clock)
    queue = MemoryQueue()
    attempts = MemoryAttempts()
    events = MemoryEvents()
    flow = Delivery(
        settings(**overrides),
        memory,
        state,
        sender,
        log,
        queue,
        attempts=attempts,
        events=events,
        logger=logging.getLogger("delivery-test"),
        metrics=metrics,
        clock=clock,
    )
    return World(clock, memory, state, receiver, flow, Applied(), metrics, log, queue, attempts, events)


@pytest.fixture
def w() -> World:
    return world()


def said(text: str, conversation: str = "c", client_id: str = "acme") -> QueuedResponse:
    """A response of the bot as the delivery queue holds it, once per receive of it (the same message id)."""
    response = ClientResponse(
        type="text",
        payload={"text": text},
        conversation_id=conversation,
        botpress_message_id=str(uuid.uuid4()),
        client_id=client_id,
        user_id="user-1",
    )
    return QueuedResponse(
        message_id=str(uuid.uuid4()),
        conversation=message_group_id(client_id, conversation),
        body=response.to_json(),
        response=response,
    )


def stuck_id(queued: QueuedResponse) -> str:
    """The response's webhook-id: where its conversation stops, if it does."""
    assert queued.response is not None
    return queued.response.webhook_id


def redriven(queued: QueuedResponse) -> QueuedResponse:
    """The same response back from the dead-letter queue: a new message of the delivery queue."""
    return QueuedResponse(str(uuid.uuid4()), queued.conversation, queued.body, queued.response)


FAILED = Answer(500, {})
DELIVERED = Done(Result.DELIVERED)
AFTER_FAILURE = Release("an earlier response failed")


def fail_until_stopped(w: World, queued: QueuedResponse) -> None:
    """Receive `queued` until its last attempt has failed and its conversation is stopped."""
    assert queued.response is not None
    w.receiver.answer(str(queued.response.payload["text"]), *[FAILED] * MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS - 1):
        (decision,) = w.run(queued)
        assert isinstance(decision, Retry)
    assert w.run(queued) == [StopConversation(HOLD_SECONDS, "receiver answered HTTP 500")]


# ── delivered ──


def test_a_response_is_posted_as_published_signed_so_a_receiver_verifies_it(w: World) -> None:
    queued = said("hello")

    assert w.run(queued) == [DELIVERED]

    (post,) = w.receiver.posts
    assert post.url == URL
    assert post.body == queued.body, "byte for byte what the topic's consumers get"
    assert post.headers["webhook-id"] == stuck_id(queued)
    Webhook(w.client().webhook_secret).verify(post.body, post.headers)
    assert w.state.attempts == Counter(), "a delivery writes no state"


def test_each_result_of_an_invocation_is_counted_under_its_metric(w: World) -> None:
    w.receiver.answer("no", Answer(503, {}))

    w.run(said("yes", "c"), said("yes too", "d"), said("no", "e"))

    assert (w.metrics.counts[Result.DELIVERED.value], w.metrics.counts[Result.FAILED.value]) == (2, 1)


def test_a_batch_of_one_conversation_is_delivered_in_order_on_the_invocations_thread(w: World) -> None:
    batch = [said(f"r{n}") for n in range(4)]

    assert w.run(*batch) == [DELIVERED] * 4

    assert w.receiver.texts() == ["r0", "r1", "r2", "r3"]
    assert {post.thread for post in w.receiver.posts} == {threading.current_thread()}


def test_a_batchs_conversations_are_posted_at_once_each_in_order() -> None:
    w = world()
    w.receiver.meeting = threading.Barrier(3, timeout=10)
    batch = [said(f"{c}{n}", conversation=c) for n in range(2) for c in "xyz"]

    assert w.run(*batch) == [DELIVERED] * 6

    for conversation in "xyz":
        assert [t for t in w.receiver.texts() if t[0] == conversation] == [f"{conversation}0", f"{conversation}1"]
    assert threading.current_thread() not in {post.thread for post in w.receiver.posts}


def test_a_conversation_is_released_as_soon_as_its_part_of_the_batch_is_done_not_after_the_slowest() -> None:
    w = world()
    fast, slow = said("fast", conversation="f"), said("slow", conversation="s")
    fast_released = threading.Event()
    w.applied.on_apply = lambda decisions: fast_released.set() if fast.message_id in decisions else None
    # The slow receiver answers only once the fast conversation's decision has reached the queue.
    w.receiver.before["slow"] = lambda: assert_(fast_released.wait(10), "fast waited for the slow POST")

    assert w.run(fast, slow) == [DELIVERED, DELIVERED]
    assert w.applied.released == [fast.message_id], "the last to finish leaves the deletes to Lambda"


def test_one_container_has_at_most_the_endpoints_cap_of_posts_in_flight_to_it() -> None:
    w = world(endpoint_concurrency=2)
    in_flight, most = 0, 0
    lock = threading.Lock()

    def arrive() -> None:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.05)  # long enough for the others to arrive, were they let in
        with lock:
            in_flight -= 1

    batch = [said(f"{c}", conversation=c) for c in "uvwxyz"]
    for queued in batch:
        w.receiver.before[str(queued.response.payload["text"]) if queued.response else ""] = arrive

    assert w.run(*batch) == [DELIVERED] * 6
    assert most == 2


# ── isolation: the breaker of each endpoint ──

OTHER_URL = "https://globex.example/hook"
THRESHOLD, COOLDOWN = 3, 30


def breaker_world(**overrides: Any) -> World:
    return world(
        new_client(),
        new_client("globex", response_url=OTHER_URL),
        endpoint_failure_threshold=THRESHOLD,
        endpoint_cooldown_seconds=COOLDOWN,
        **overrides,
    )


def open_breaker(w: World) -> None:
    """acme's receiver fails THRESHOLD times in a row."""
    for n in range(THRESHOLD):
        w.receiver.answer(f"fail{n}", FAILED)
        (decision,) = w.run(said(f"fail{n}", conversation=f"c{n}"))
        assert isinstance(decision, Retry)


def test_failures_in_a_row_open_the_breaker_its_responses_wait_unposted_and_other_clients_go_on() -> None:
    w = breaker_world()
    open_breaker(w)
    held, other = said("held"), said("other", client_id="globex")

    decisions = w.run(held, other)

    assert decisions == [Held(COOLDOWN, "its endpoint's breaker is open"), DELIVERED]
    assert "held" not in w.receiver.texts(), "not POSTed"
    assert w.state.attempts[stuck_id(held)] == 0, "a held response has had no attempt"
    assert w.client().endpoint_state is EndpointState.OPEN, "the other containers read it from the record"
    assert w.client().endpoint_reason == "receiver answered HTTP 500"
    assert w.metrics.counts["EndpointOpened"] == 1


def test_after_the_cooldown_one_probe_goes_and_a_prompt_success_closes_the_breaker_everywhere() -> None:
    w = breaker_world()
    open_breaker(w)
    w.clock.now += COOLDOWN

    assert w.run(said("probe", conversation="p")) == [DELIVERED]
    assert w.run(said("after", conversation="q")) == [DELIVERED]

    assert w.receiver.texts()[-2:] == ["probe", "after"]
    assert w.client().endpoint_state is EndpointState.HEALTHY
    assert w.client().endpoint_open_until is None
    assert w.metrics.counts["EndpointProbed"] == 1 and w.metrics.counts["EndpointClosed"] == 1


def test_a_failed_probe_keeps_the_breaker_open_another_cooldown() -> None:
    w = breaker_world()
    open_breaker(w)
    w.clock.now += COOLDOWN
    w.receiver.answer("probe", FAILED)

    (probe,) = w.run(said("probe", conversation="p"))
    (next_one,) = w.run(said("next", conversation="q"))

    assert isinstance(probe, Retry), "a probe is a real attempt"
    assert isinstance(next_one, Held)
    assert "next" not in w.receiver.texts()
    assert w.client().endpoint_state is EndpointState.OPEN


def test_while_another_container_has_the_probe_this_one_holds_without_posting() -> None:
    w = breaker_world()
    now = datetime.fromtimestamp(w.clock.now, UTC)
    # What another container wrote: the breaker open, and its probe under way until then.
    w.clients.open_endpoint("acme", now, now + timedelta(seconds=12), "receiver timed out")

    (decision,) = w.run(said("r"))

    assert decision == Held(12, "its endpoint's breaker is open")
    assert w.receiver.posts == []


def test_a_breaker_closed_by_another_container_is_not_opened_again_by_a_stale_one() -> None:
    w = breaker_world()
    open_breaker(w)  # this container saw the failures
    w.clock.now += COOLDOWN
    w.clients.close_endpoint("acme")  # another container's probe succeeded

    assert w.run(said("r")) == [DELIVERED]
    assert w.client().endpoint_state is EndpointState.HEALTHY


def test_slow_successes_count_against_the_breaker_though_each_is_delivered() -> None:
    w = breaker_world(endpoint_slow_seconds=0.5)
    w.receiver.takes_at[URL] = 0.6  # acme's receiver answers, slowly

    decisions = [w.run(said(f"slow{n}", conversation=f"c{n}"))[0] for n in range(THRESHOLD)]
    (held,) = w.run(said("next", conversation="n"))
    (other,) = w.run(said("other", client_id="globex"))

    assert decisions == [DELIVERED] * THRESHOLD
    assert isinstance(held, Held) and other == DELIVERED
    assert w.client().endpoint_reason == "receiver took 0.6 s to answer"


def test_a_response_held_for_the_whole_retry_window_stops_its_conversation() -> None:
    w = breaker_world()
    open_breaker(w)
    w.clock.now += sum(SCHEDULE) + (MAX_ATTEMPTS - 1 - len(SCHEDULE)) * SCHEDULE[-1]
    w.clients.open_endpoint("acme", datetime.fromtimestamp(0, UTC), datetime.fromtimestamp(w.clock.now + 9, UTC), "")

    (decision,) = w.run(said("late"))

    assert decision == StopConversation(HOLD_SECONDS, "its endpoint failed for the whole retry window")


def test_a_held_response_comes_back_less_often_the_longer_its_endpoint_fails_within_bounds() -> None:
    w = breaker_world(delivery_max_attempts=50, delivery_retry_schedule=(36000,), endpoint_park_after_seconds=10**6)
    open_breaker(w)
    waits = []
    for minutes in (0, 10, 60, 600):
        w.clock.now += minutes * 60
        now = datetime.fromtimestamp(w.clock.now, UTC)
        w.clients.claim_probe("acme", now, now + timedelta(seconds=COOLDOWN))  # another container probes
        (decision,) = w.run(said(f"h{minutes}"))
        assert isinstance(decision, Held)
        waits.append(decision.seconds)

    assert waits == sorted(waits) and waits[0] == COOLDOWN
    assert waits[-1] == 10 * COOLDOWN, "bounded: a receiver that comes back is soon delivered to"


# ── isolation: a dead endpoint's conversations are parked, and resumed in order when it is back ──

PARK_AFTER = 600


def record(w: World, *queued: QueuedResponse) -> None:
    """The responses log records them, as its own consumer of the topic does."""
    for n, item in enumerate(queued):
        assert item.response is not None
        position = len(w.log.entries.get(f"{item.response.client_id}:{item.response.conversation_id}", [])) + n + 1
        w.log.record(position, item.response, item.body)


def failed_probe(w: World) -> None:
    """A response is the probe, and the receiver is still down: it is tried again."""
    (probe,) = w.run(said("probe", conversation="probe"))
    assert isinstance(probe, Retry)


def probe_of(client_id: str = "acme") -> QueuedResponse:
    probe = ProbeEndpoint(client_id=client_id)
    return QueuedResponse(str(uuid.uuid4()), "probes", probe.to_json(), None, probe=probe)


def parked_world() -> World:
    """acme's receiver is down, and has been for PARK_AFTER: parked, and every container knows; its probe failed."""
    w = breaker_world(endpoint_park_after_seconds=PARK_AFTER, endpoint_disable_after_hours=24)
    w.receiver.down.add(URL)
    open_breaker(w)
    w.clock.now += PARK_AFTER
    failed_probe(w)
    (held,) = w.run(said("held", conversation="t"))  # the container that holds it parks the endpoint
    assert isinstance(held, Held)
    assert w.client().endpoint_state is EndpointState.PARKED
    assert w.run(said("soon", conversation="u")) == [Held(HOLD_SECONDS, "parking its endpoint")], (
        "not before every container knows"
    )
    w.clock.now += HOLD_SECONDS
    assert ("acme", "probe") in w.queue.nudged, "its probe is queued: it comes back though acme sends nothing"
    assert isinstance(w.run(probe_of())[0], Held), "the receiver is still down"
    return w


def nudge_of(queued: QueuedResponse) -> QueuedResponse:
    """What the flow puts in the conversation's group when its endpoint is back."""
    assert queued.response is not None
    resume = ResumeParked(client_id=queued.response.client_id, conversation_id=queued.response.conversation_id)
    return QueuedResponse(str(uuid.uuid4()), queued.conversation, resume.to_json(), None, resume)


def test_an_endpoint_open_too_long_is_parked_its_responses_leave_the_queue_unposted_and_others_go_on() -> None:
    w = parked_world()
    conversation = [said(f"p{n}", conversation="c") for n in range(3)]
    record(w, *conversation)
    posts_before = len(w.receiver.posts)

    decisions = w.run(*conversation, said("other", client_id="globex"))

    assert decisions == [Done(Result.PARKED, "its endpoint is parked")] * 3 + [DELIVERED]
    assert len(w.receiver.posts) == posts_before + 1 and w.receiver.texts()[-1] == "other"
    assert w.state.parks["acme", "c"] == Park(stuck_id(conversation[0]), stuck_id(conversation[2]))
    assert w.client().parked_conversations == 1
    assert w.metrics.counts["EndpointParked"] == 1


def test_when_the_probe_succeeds_each_parked_conversation_is_delivered_from_the_log_in_order_with_its_ids() -> None:
    w = parked_world()
    first, second = (
        [said(f"c{n}", conversation="c") for n in range(2)],
        [said(f"d{n}", conversation="d") for n in range(2)],
    )
    record(w, *first)
    record(w, *second)
    w.run(*first, *second)  # parked
    w.receiver.down.clear()  # the receiver is back
    w.clock.now += COOLDOWN  # and a probe is due
    live = said("c-live", conversation="c")
    record(w, live)

    assert w.run(live) == [DELIVERED], "the probe: its conversation's parked responses first"
    assert w.client().endpoint_state is EndpointState.HEALTHY
    assert ("acme", "d") in w.queue.nudged, "the other parked conversation is nudged"
    nudge = QueuedResponse(
        str(uuid.uuid4()), second[0].conversation, "{}", None, ResumeParked(client_id="acme", conversation_id="d")
    )
    assert w.run(nudge) == [Done(Result.RESUMED)]

    delivered = [post for post in w.receiver.posts if post.text[0] in "cd" and not post.text.startswith("fail")]
    assert [post.text for post in delivered] == ["c0", "c1", "c-live", "d0", "d1"]
    assert [post.headers["webhook-id"] for post in delivered[:2]] == [stuck_id(q) for q in first]
    assert w.state.parks == {} and w.client().parked_conversations == 0


def test_a_resume_that_fails_midway_goes_on_from_where_it_stopped() -> None:
    w = parked_world()
    conversation = [said(f"c{n}", conversation="c") for n in range(3)]
    record(w, *conversation)
    w.run(*conversation)
    w.receiver.down.clear()
    w.clients.close_endpoint("acme")  # switched on again
    w.receiver.answer("c1", FAILED)
    nudge = nudge_of(conversation[0])

    (first_try,) = w.run(nudge)
    (second_try,) = w.run(nudge)

    assert isinstance(first_try, Held)
    assert second_try == Done(Result.RESUMED)
    assert [t for t in w.receiver.texts() if t.startswith("c")] == ["c0", "c1", "c1", "c2"], "c0 not sent again"


def test_a_parked_endpoints_probe_comes_back_while_it_fails_and_once_it_answers_resumes_every_parked_conversation() -> (
    None
):
    w = parked_world()
    conversation = [said(f"c{n}", conversation="c") for n in range(2)]
    record(w, *conversation)
    w.run(*conversation)
    w.clock.now += COOLDOWN

    (failed,) = w.run(probe_of())
    w.receiver.down.clear()
    w.clock.now += COOLDOWN
    (answered,) = w.run(probe_of())

    assert isinstance(failed, Held), "back in the queue for the next"
    assert answered == Done(Result.PROBED)
    probes = [post for post in w.receiver.posts if post.body == probe_body("acme")]
    assert len(probes) == 3, "parked_world's, and these two"
    headers = probes[-1].headers
    webhook_id, timestamp = headers["webhook-id"], int(headers["webhook-timestamp"])
    assert webhook_id.startswith("probe_")
    assert headers["webhook-signature"] == signing.sign(
        w.client().webhook_secret, webhook_id, timestamp, probe_body("acme")
    )
    assert w.client().endpoint_state is EndpointState.HEALTHY
    assert ("acme", "c") in w.queue.nudged, "its parked conversations are resumed"


def test_a_disabled_clients_parked_endpoint_is_not_probed() -> None:
    w = parked_world()
    w.clients.records["acme"] = w.client().model_copy(update={"enabled": False})
    w.clock.now += COOLDOWN
    posts = len(w.receiver.posts)

    assert w.run(probe_of()) == [Done(Result.SKIPPED, "client disabled")]
    assert len(w.receiver.posts) == posts


def test_an_endpoint_failing_for_the_disable_time_is_disabled_and_no_longer_probed() -> None:
    w = parked_world()
    w.clock.now += 24 * 3600
    queued = said("late")
    record(w, queued)

    w.run(queued)  # parked, and the endpoint disabled by the container that holds or parks it
    w.clock.now += COOLDOWN * 20
    (decision,) = w.run(said("later"))

    assert w.client().endpoint_state is EndpointState.DISABLED
    assert decision == Done(Result.PARKED, "its endpoint is disabled")
    assert "later" not in w.receiver.texts(), "no probe"


# ── the retry schedule ──


def test_each_failed_attempt_waits_the_schedules_next_delay_and_its_last_repeats(w: World) -> None:
    queued = said("flaky")
    w.receiver.answer("flaky", *[FAILED] * (MAX_ATTEMPTS - 1))

    waits = [w.run(queued)[0] for _ in range(MAX_ATTEMPTS - 1)]

    assert waits == [Retry(5, "receiver answered HTTP 500"), Retry(300, "receiver answered HTTP 500")] + [
        Retry(1800, "receiver answered HTTP 500")
    ] * (MAX_ATTEMPTS - 3)
    assert w.run(queued) == [DELIVERED]


def test_what_waits_behind_a_failing_response_is_released_untried_and_keeps_all_its_attempts(w: World) -> None:
    first, second = said("first"), said("second")
    w.receiver.answer("first", FAILED, FAILED).answer("second", FAILED)

    assert w.run(first, second) == [Retry(5, "receiver answered HTTP 500"), AFTER_FAILURE]
    assert w.run(first, second) == [Retry(300, "receiver answered HTTP 500"), AFTER_FAILURE]
    assert w.run(first, second) == [DELIVERED, Retry(5, "receiver answered HTTP 500")]

    assert w.receiver.texts() == ["first", "first", "first", "second"], "only real POSTs are attempts"


def test_an_unreachable_receiver_is_a_failed_attempt(w: World) -> None:
    w.receiver.answer("r", PostFailed("unreachable (NewConnectionError)", kind=Failure.REFUSED))

    assert w.run(said("r")) == [Retry(5, "receiver unreachable (NewConnectionError)")]


def test_a_receiver_that_answers_no_2xx_in_time_is_a_failed_attempt(w: World) -> None:
    w.receiver.answer("r", PostFailed("no answer in time", kind=Failure.TIMEOUT), Answer(302, {"location": "/x"}))
    queued = said("r")

    assert w.run(queued) == [Retry(5, "receiver no answer in time")]
    assert w.run(queued) == [Retry(300, "receiver answered HTTP 302")], "a redirect is not followed"


# ── Retry-After ──


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_waited_when_longer_than_the_schedule(w: World, status: int) -> None:
    w.receiver.answer("r", Answer(status, {"retry-after": "120"}))

    assert w.run(said("r")) == [Retry(120, f"receiver answered HTTP {status}")]


def test_retry_after_as_an_http_date_is_waited_until(w: World) -> None:
    w.receiver.answer("r", Answer(503, {"retry-after": email.utils.formatdate(w.clock.now + 90, usegmt=True)}))

    assert w.run(said("r")) == [Retry(90, "receiver answered HTTP 503")]


def test_a_retry_after_shorter_than_the_schedule_or_on_another_status_does_not_shorten_it(w: World) -> None:
    w.receiver.answer("r", Answer(429, {"retry-after": "1"}), Answer(500, {"retry-after": "600"}))
    queued = said("r")

    assert w.run(queued) == [Retry(5, "receiver answered HTTP 429")]
    assert w.run(queued) == [Retry(300, "receiver answered HTTP 500")]


# ── 410 Gone ──


def test_410_switches_the_response_url_off_and_nothing_more_is_posted_there(w: World) -> None:
    w.receiver.answer("first", Answer(410, {}))

    assert w.run(said("first"), said("second")) == [
        Done(Result.GONE, "receiver answered 410 Gone"),
        Done(Result.SKIPPED, "response URL switched off after 410 Gone"),
    ]

    assert w.client().response_url_off
    assert w.receiver.texts() == ["first"]
    assert w.state.attempts == Counter(), "not a failed attempt: nothing is retried"


# ── not for a webhook ──


@pytest.mark.parametrize(
    ("client", "reason"),
    [
        (new_client("other"), "unknown client"),
        (new_client(enabled=False), "client disabled"),
        (new_client(response_url=None), "no response URL"),
        (new_client(response_url_off=True), "response URL switched off after 410 Gone"),
    ],
)
def test_a_response_not_for_a_webhook_is_skipped_and_says_why(client: Client, reason: str) -> None:
    w = world(client)

    assert w.run(said("r")) == [Done(Result.SKIPPED, reason)]
    assert w.receiver.posts == []


def test_a_message_that_is_not_a_response_is_dead_lettered_and_its_conversation_goes_on(w: World) -> None:
    good = said("after it")
    broken = QueuedResponse(str(uuid.uuid4()), good.conversation, '{"type": "text"}', None)

    assert w.run(broken, good) == [DeadLetter("not a client response"), DELIVERED]
    assert w.state.stops == {}


# ── time running out ──


def test_what_an_invocation_has_no_time_for_is_released_not_attempted() -> None:
    w = world(takes=0.8)  # each POST takes 0.8 s of the invocation's 3 s
    w.deadline = w.clock.now + WEBHOOK_TIMEOUT_SECONDS + ATTEMPT_RESERVE_SECONDS + 1.5
    batch = [said(f"r{n}") for n in range(4)]

    decisions = w.run(*batch)

    out_of_time = Release("not enough time left in this invocation")
    assert decisions == [DELIVERED, DELIVERED, out_of_time, out_of_time]
    assert w.receiver.texts() == ["r0", "r1"], "nothing is begun that might not end in time"
    assert all(decision.result is not Result.FAILED for decision in decisions), "not counted as failures"


# ── a conversation stops at its undeliverable response ──


def test_the_last_attempt_stops_the_conversation_and_holds_it_until_every_container_knows(w: World) -> None:
    stuck = said("stuck")

    fail_until_stopped(w, stuck)

    assert w.state.stop_of("acme", "c") == Stop(stuck_id(stuck), dead_lettered=False)
    assert w.client().stopped_conversations == 1, "counted on the client with the stop"
    assert len(w.receiver.posts) == MAX_ATTEMPTS


def test_the_stop_hold_is_a_setting_that_defaults_to_the_client_cache_time_and_a_margin() -> None:
    unset = settings().model_dump(exclude={"delivery_stop_hold_seconds"})
    assert DeliverySettings.model_validate(unset).delivery_stop_hold_seconds == 60 + 5
    assert DeliverySettings.model_validate({**unset, "cache_ttl_seconds": 0.5}).delivery_stop_hold_seconds == 1 + 5
    w = world(delivery_stop_hold_seconds=1, cache_ttl_seconds=0.5)
    w.receiver.answer("stuck", *[FAILED] * MAX_ATTEMPTS)
    stuck = said("stuck")

    decisions = [w.run(stuck)[0] for _ in range(MAX_ATTEMPTS)]

    assert decisions[-1] == StopConversation(1, "receiver answered HTTP 500")


def test_a_hold_shorter_than_the_client_cache_time_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"delivery_stop_hold_seconds \(30\) must be at least cache_ttl_seconds"):
        settings(delivery_stop_hold_seconds=30, cache_ttl_seconds=60)


def test_after_the_hold_the_stopped_conversation_goes_to_the_dead_letter_queue_whole_and_in_order(w: World) -> None:
    stuck, later = said("stuck"), said("later")
    fail_until_stopped(w, stuck)

    assert w.run(stuck, later) == [DeadLetter(f"its conversation stopped at {stuck_id(stuck)}")] * 2
    assert w.state.stop_of("acme", "c") == Stop(stuck_id(stuck), dead_lettered=True)

    after = said("said after the stop")
    assert w.run(after) == [DeadLetter(f"its conversation stopped at {stuck_id(stuck)}")]
    assert w.receiver.texts() == ["stuck"] * MAX_ATTEMPTS, "nothing later is POSTed before it"


def test_a_stop_holds_up_only_its_own_conversation(w: World) -> None:
    stuck = said("stuck")
    fail_until_stopped(w, stuck)

    assert w.run(stuck, said("elsewhere", conversation="d")) == [
        DeadLetter(f"its conversation stopped at {stuck_id(stuck)}"),
        DELIVERED,
    ]


def test_a_redrive_resumes_the_conversation_with_a_fresh_schedule(w: World) -> None:
    stuck, later = said("stuck"), said("later")
    fail_until_stopped(w, stuck)
    w.run(stuck, later)  # to the dead-letter queue
    w.receiver.answer("stuck", FAILED)

    assert w.run(redriven(stuck), redriven(later)) == [Retry(5, "receiver answered HTTP 500"), AFTER_FAILURE]
    assert w.state.stops == {} and w.client().stopped_conversations == 0
    assert w.run(redriven(stuck), redriven(later)) == [DELIVERED, DELIVERED]
    assert w.receiver.texts()[-2:] == ["stuck", "later"]


def test_when_the_dead_letter_queue_refuses_the_stop_is_not_taken_for_a_redrive_on_the_next_receive(
    w: World,
) -> None:
    stuck = said("stuck")
    fail_until_stopped(w, stuck)
    w.applied.refuse = True

    with pytest.raises(RuntimeError, match="dead-letter queue refused"):
        w.run(stuck)
    assert w.state.stop_of("acme", "c") == Stop(stuck_id(stuck), dead_lettered=False)
    w.applied.refuse = False

    assert w.run(stuck) == [DeadLetter(f"its conversation stopped at {stuck_id(stuck)}")], "not delivered"
    assert len(w.receiver.posts) == MAX_ATTEMPTS


# ── rotation ──


def test_during_a_rotations_grace_each_delivery_carries_a_signature_for_either_secret_and_after_only_the_new() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    grace_ends = datetime.now(UTC) + timedelta(hours=1)
    w = world(new_client(webhook_secret=new, previous_webhook_secret=old, previous_secret_expires_at=grace_ends))

    w.run(said("during"))
    w.clock.now = (grace_ends + timedelta(seconds=1)).timestamp()
    w.run(said("after"))

    during, after = w.receiver.posts
    assert len(during.headers["webhook-signature"].split(" ")) == 2, "one signature per valid secret"
    for secret in (old, new):
        Webhook(secret).verify(during.body, during.headers)
    assert signed_with(new, after) and not signed_with(old, after)
    assert len(after.headers["webhook-signature"].split(" ")) == 1


def signed_with(secret: str, post: Post) -> bool:
    """Whether the POST carries the signature standardwebhooks makes with `secret` (its `verify` would refuse the
    timestamp: the test's clock is an hour on)."""
    timestamp = datetime.fromtimestamp(int(post.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(post.headers["webhook-id"], timestamp, post.body)
    return expected in post.headers["webhook-signature"].split(" ")


# ── the attempt log ──


def again(queued: QueuedResponse) -> QueuedResponse:
    """The same message received again (after a retry's delay, a hold or a release)."""
    return dataclasses.replace(queued, receive_count=queued.receive_count + 1)


def test_each_attempt_is_recorded_with_its_number_outcome_and_answer_in_one_write_per_invocation(w: World) -> None:
    queued = said("r")
    w.receiver.answer(
        "r", Answer(500, {}, b'{"error": "database down"}'), PostFailed("no answer", kind=Failure.TIMEOUT)
    )
    w.receiver.takes = 0.25

    for _ in range(3):
        w.run(queued)
        queued = again(queued)

    first, second, third = w.attempts.records
    assert [(a.attempt, a.status, a.failure, a.trigger) for a in w.attempts.records] == [
        (1, 500, Failure.HTTP, Trigger.SCHEDULE),
        (2, None, Failure.TIMEOUT, Trigger.SCHEDULE),
        (3, 204, None, Trigger.SCHEDULE),
    ]
    assert first.body == '{"error": "database down"}' and second.body == ""
    assert (first.webhook_id, first.conversation_id, first.type) == (stuck_id(queued), "c", "text")
    assert first.duration_ms == 250 and first.at.timestamp() < second.at.timestamp() < third.at.timestamp()
    assert [len(write) for write in w.attempts.writes] == [1, 1, 1], "one write per invocation"
    assert {client for write in w.attempts.writes for client, _ in write} == {"acme"}


def test_a_batchs_attempts_are_one_write_and_only_posts_are_attempts(w: World) -> None:
    batch = [said("a", conversation="x"), said("b", conversation="x"), said("c", conversation="y")]
    w.receiver.answer("a", FAILED)

    w.run(*batch)

    assert len(w.attempts.writes) == 1
    assert sorted((a.conversation_id, a.delivered) for a in w.attempts.records) == [("x", False), ("y", True)], (
        "b waited behind a, untried: not an attempt"
    )


def test_an_answers_body_is_kept_to_its_first_kilobyte(w: World) -> None:
    w.receiver.answer("r", Answer(200, {}, "é".encode() * 600))

    w.run(said("r"))

    (record,) = w.attempts.records
    assert record.body == "é" * 512 and len(record.body.encode()) == 1024


@pytest.mark.parametrize(
    ("answer", "status", "failure"),
    [
        (Answer(413, {}), 413, Failure.TOO_LARGE),
        (Answer(410, {}), 410, Failure.HTTP),
        (Answer(302, {"location": "/x"}), 302, Failure.HTTP),
        (PostFailed("unreachable: its host name does not resolve", kind=Failure.DNS), None, Failure.DNS),
        (PostFailed("unreachable: the TLS handshake failed", kind=Failure.TLS), None, Failure.TLS),
        (PostFailed("unreachable (NewConnectionError)", kind=Failure.REFUSED), None, Failure.REFUSED),
    ],
)
def test_a_failed_attempt_says_its_status_or_why_there_was_none(
    w: World, answer: Answer | PostFailed, status: int | None, failure: Failure
) -> None:
    w.receiver.answer("r", answer)

    w.run(said("r"))

    (record,) = w.attempts.records
    assert (record.status, record.failure, record.delivered) == (status, failure, False)


def test_a_probe_is_recorded_as_one_and_held_responses_are_not_recorded() -> None:
    w = breaker_world()
    open_breaker(w)
    w.attempts.writes.clear()

    w.run(said("held"))
    w.clock.now += COOLDOWN
    w.run(said("probe", conversation="p"))

    (probe,) = w.attempts.records
    assert (probe.trigger, probe.delivered) == (Trigger.PROBE, True)


def test_a_recovered_response_is_recorded_as_a_recover(w: World) -> None:
    w.run(dataclasses.replace(said("r"), trigger=Trigger.RECOVER))

    (record,) = w.attempts.records
    assert record.trigger is Trigger.RECOVER


def test_a_first_receive_reads_no_counter_for_its_attempt_number(w: World) -> None:
    reads: list[str] = []
    w.state.failed_attempts = lambda webhook_id: reads.append(webhook_id) or 0  # type: ignore[method-assign]

    w.run(said("r"))

    assert reads == [] and w.attempts.records[0].attempt == 1


def test_the_invocations_attempts_are_written_even_when_it_fails(w: World) -> None:
    stuck = said("stuck", conversation="x")
    fail_until_stopped(w, stuck)
    w.clock.now += HOLD_SECONDS
    w.applied.refuse = True  # the dead-letter queue refuses x's messages: the invocation fails
    w.attempts.writes.clear()

    with pytest.raises(RuntimeError):
        w.run(said("fine", conversation="y"), again(stuck))

    assert [(a.conversation_id, a.delivered) for a in w.attempts.records] == [("y", True)]


# ── operational events ──


def test_operators_are_told_when_the_breaker_opens_and_when_it_closes() -> None:
    w = breaker_world()
    started = w.clock.now
    open_breaker(w)
    w.clock.now += COOLDOWN
    w.run(said("probe", conversation="p"))

    (failing,) = w.events.of(EndpointFailing)
    (recovered,) = w.events.of(EndpointRecovered)
    assert (failing.client_id, failing.host, failing.reason) == ("acme", "acme.example", "receiver answered HTTP 500")
    assert failing.since.timestamp() == pytest.approx(started, abs=0.01)
    assert recovered.since == failing.since and recovered.at.timestamp() == pytest.approx(w.clock.now, abs=0.01)
    assert '"type":"endpoint.failing"' in failing.body() and "/hook" not in failing.body(), "the host, not the URL"


def test_operators_are_told_of_a_stopped_conversation_once(w: World) -> None:
    stuck = said("stuck", conversation="order-42")
    fail_until_stopped(w, stuck)
    w.clock.now += HOLD_SECONDS
    w.run(stuck, said("after", conversation="order-42"))

    (stopped,) = w.events.published
    assert isinstance(stopped, ConversationStopped)
    assert (stopped.conversation_id, stopped.webhook_id, stopped.reason) == (
        "order-42",
        stuck_id(stuck),
        "receiver answered HTTP 500",
    )


def test_operators_are_told_when_an_endpoint_is_parked_and_when_disabled() -> None:
    w = parked_world()
    w.clock.now += 24 * 3600
    w.run(said("late"))

    (parked,) = w.events.of(EndpointParked)
    (disabled,) = w.events.of(EndpointDisabled)
    assert parked.reason == f"failing for {PARK_AFTER // 60} minutes" and parked.host == "acme.example"
    assert disabled.reason is not None and disabled.reason.startswith("failing for 24")


# ── a recover's part ──


def test_a_recover_job_puts_its_responses_back_behind_it_with_a_fresh_schedule(w: World) -> None:
    conversation = [said(f"r{n}", conversation="c") for n in range(3)]
    record(w, *conversation)
    w.state.attempts[stuck_id(conversation[2])] = MAX_ATTEMPTS
    positions = [entry.position for entry in w.log.entries["acme:c"]]
    job = RecoverJob(client_id="acme", conversation_id="c", positions=[positions[0], positions[2]])
    queued = QueuedResponse(str(uuid.uuid4()), conversation[0].conversation, job.to_json(), None, recover=job)

    assert w.run(queued) == [Done(Result.REQUEUED)]
    assert w.queue.requeued == [conversation[0].body, conversation[2].body]
    assert w.state.attempts[stuck_id(conversation[2])] == 0, "its failed attempts forgotten"
    assert w.receiver.posts == [], "delivered when they come back, as any response"


@pytest.mark.parametrize(
    ("fields", "kept"),
    [({"response_url_off": True}, True), ({"enabled": False}, True), ({"response_url": None}, False)],
    ids=["off after 410", "client disabled", "no response URL"],
)
def test_a_response_skipped_while_the_endpoint_is_off_is_kept_for_a_recover(fields: dict[str, Any], kept: bool) -> None:
    w = world(new_client(**fields))
    queued = said("r")

    (decision,) = w.run(queued)

    assert isinstance(decision, Done) and decision.result is Result.SKIPPED
    skips = [record for write in w.attempts.writes for _, record in write if isinstance(record, Skip)]
    assert [(s.webhook_id, s.conversation_id) for s in skips] == ([(stuck_id(queued), "c")] if kept else [])
    assert w.attempts.records == [], "not an attempt"


def test_a_response_about_to_be_skipped_reads_its_client_afresh_as_it_may_have_been_switched_on() -> None:
    w = world(new_client(response_url_off=True))
    cached: dict[str, Client] = {}
    read = w.clients.get
    w.clients.get = lambda client_id: cached.setdefault(client_id, read(client_id))  # type: ignore[method-assign,assignment,return-value]
    w.clients.forget = lambda client_id: cached.pop(client_id, None)  # type: ignore[method-assign,assignment,return-value]
    (skipped,) = w.run(said("while off"))
    w.clients.records["acme"] = w.clients.records["acme"].model_copy(update={"response_url_off": False})

    (delivered,) = w.run(said("switched on"))

    assert isinstance(skipped, Done) and skipped.result is Result.SKIPPED
    assert delivered == DELIVERED and w.receiver.texts() == ["switched on"]
