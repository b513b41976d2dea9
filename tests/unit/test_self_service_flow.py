"""Client self-service with in-memory stores, a receiver standing in for the HTTP POST and a clock of the test's
own: GET /client's view of the endpoint and its attempts, GET /deliveries' checks, a test delivery, a new response
URL, a new signing secret. The real stores (moto, HTTP) are tests/integration/test_self_service.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import memory
import pytest
from memory import EPOCH, MemoryAttemptLog, attempt
from standardwebhooks import Webhook

from relay import signing
from relay.adapters.outbound import Answer, PostFailed
from relay.adapters.webhook import WebhookSender
from relay.attempts import DeliveriesQuery, Failure, Trigger
from relay.caller import Caller
from relay.client_status import ClientProfile, StoppedConversation
from relay.endpoints import EndpointState
from relay.errors import NoResponseUrl, RateLimited, Unauthorized
from relay.flows.self_service import ResponseUrlChange, SecretRotation, SelfService
from relay.flows.throttling import Throttle
from relay.models import signing_secrets
from relay.rate_limits import DEFAULT_RATE, RateLimit
from relay.stores.clients import Rotation

ACME = Caller("acme")
NOW = EPOCH
HOUR = 3600.0


class MemoryClients:
    def __init__(self, **fields: Any) -> None:
        self.profiles = {
            "acme": ClientProfile.model_validate(
                {"client_id": "acme", "name": "ACME", "response_url": "https://acme.example/hook", **fields}
            )
        }
        self.secret = signing.new_secret()
        self.previous: tuple[str, datetime] | None = None

    def profile(self, client_id: str) -> ClientProfile | None:
        return self.profiles.get(client_id)

    def signing(self, client_id: str, now: datetime) -> tuple[ClientProfile, list[str]] | None:
        profile = self.profiles.get(client_id)
        previous, until = self.previous or (None, None)
        return (profile, signing_secrets(self.secret, previous, until, now)) if profile else None

    def set_url(self, client_id: str, url: str | None) -> None:
        name = self.profiles[client_id].name
        self.profiles[client_id] = ClientProfile(
            client_id=client_id, name=name, response_url=url, switched_on_at=datetime.fromtimestamp(NOW, UTC)
        )

    def rotate(self, client_id: str, rotation: Rotation, now: datetime) -> None:
        assert rotation.webhook_secret is not None and rotation.token_hash is None
        self.previous = (self.secret, now + rotation.grace) if rotation.grace else None
        self.secret = rotation.webhook_secret


class Receiver:
    """The response URL as the sender's `exchange`: each POST kept, answered as told (204 by default)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, dict[str, str]]] = []
        self.answers: list[Answer | PostFailed] = []

    def __call__(self, url: str, body: str, headers: dict[str, str], timeout_seconds: float) -> Answer:
        self.posts.append((url, body, headers))
        answer = self.answers.pop(0) if self.answers else Answer(204, {})
        if isinstance(answer, PostFailed):
            raise answer
        return answer


class MemoryStops:
    """The delivery state: the client's stopped and parked conversations."""

    def __init__(self, *stopped: StoppedConversation, parked: Sequence[str] = ()) -> None:
        self.stopped = list(stopped)
        self.parked_conversations = list(parked)
        self.reads = 0

    def stops_of(self, client_id: str) -> list[StoppedConversation]:
        self.reads += 1
        return self.stopped

    def parked(self, client_id: str) -> list[str]:
        return self.parked_conversations


class World:
    def __init__(self, *attempts: Any, stops: MemoryStops | None = None, **fields: Any) -> None:
        self.log = MemoryAttemptLog()
        self.log.write([("acme", a) for a in attempts])
        self.stops = stops or MemoryStops()
        self.clients = MemoryClients(**fields)
        self.receiver = Receiver()
        self.nudged: list[tuple[str, list[str]]] = []
        self.buckets = memory.MemoryBuckets(memory.Clock())
        self.flow = SelfService(
            self.clients,
            self.log,
            self.stops,
            WebhookSender(10, self.receiver),  # real time: the reference library checks a signature's timestamp
            lambda client_id, conversations: self.nudged.append((client_id, list(conversations))),
            throttle=Throttle(self.buckets, memory.MemoryClients("acme"), DEFAULT_RATE, events=memory.MemoryEvents()),
            clock=lambda: NOW,
        )


def service(
    *attempts: Any, stops: MemoryStops | None = None, **fields: Any
) -> tuple[SelfService, MemoryAttemptLog, MemoryStops]:
    w = World(*attempts, stops=stops, **fields)
    return w.flow, w.log, w.stops


def at(seconds_ago: float) -> datetime:
    return datetime.fromtimestamp(NOW - seconds_ago, UTC)


def test_a_client_with_only_deliveries_is_healthy_with_its_last_success_and_counts() -> None:
    flow, _, _ = service(attempt(NOW - 25 * HOUR), attempt(NOW - 2 * HOUR), attempt(NOW - HOUR, webhook_id="msg_2"))

    status = flow.status(ACME)

    assert status.endpoint.model_dump(exclude_none=True) == {"state": "healthy"}
    assert status.last_success is not None and status.last_success.webhook_id == "msg_2"
    assert status.last_failure is None
    assert status.last_24_hours.model_dump() == {"delivered": 2, "failed": 0}, "not the one of 25 hours ago"
    assert (status.client_id, status.name, status.response_url) == ("acme", "ACME", "https://acme.example/hook")


def test_failures_since_the_last_success_make_it_failing_since_the_first_of_them() -> None:
    flow, _, _ = service(
        attempt(NOW - 5 * HOUR, status=500, failure="http"),
        attempt(NOW - 4 * HOUR),
        attempt(NOW - 3 * HOUR, status=503, failure="http"),
        attempt(NOW - 2 * HOUR, status=None, failure="timeout"),
    )

    endpoint = flow.status(ACME).endpoint

    assert (endpoint.state, endpoint.since, endpoint.reason) == ("failing", at(3 * HOUR), "no answer in time")


def test_a_success_after_failures_is_healthy_again() -> None:
    flow, _, _ = service(attempt(NOW - 3 * HOUR, status=500, failure="http"), attempt(NOW - HOUR))

    status = flow.status(ACME)

    assert status.endpoint.state == "healthy"
    assert status.last_failure is not None and status.last_failure.status == 500
    assert status.last_24_hours.model_dump() == {"delivered": 1, "failed": 1}


@pytest.mark.parametrize("state", [state for state in EndpointState if state is not EndpointState.HEALTHY])
def test_a_state_of_the_record_is_shown_with_since_and_reason(state: EndpointState) -> None:
    flow, _, _ = service(
        endpoint_state=state,
        endpoint_since=at(HOUR),
        endpoint_open_until=at(-30),
        endpoint_reason="receiver answered HTTP 502",
    )

    endpoint = flow.status(ACME).endpoint

    assert (endpoint.state, endpoint.since, endpoint.reason) == (state.value, at(HOUR), "receiver answered HTTP 502")
    assert endpoint.open_until == (at(-30) if state is EndpointState.OPEN else None)


def test_a_url_switched_off_by_a_410_is_off_since_that_answer() -> None:
    flow, _, _ = service(attempt(NOW - HOUR, status=410, failure="http"), response_url_off=True)

    endpoint = flow.status(ACME).endpoint

    assert (endpoint.state, endpoint.since, endpoint.reason) == ("off", at(HOUR), "the receiver answered 410 Gone")


def test_no_response_url_is_off_and_says_how_to_set_one() -> None:
    flow, _, _ = service(response_url=None)

    status = flow.status(ACME)

    assert status.response_url is None and status.endpoint.state == "off"
    assert "PUT /client/response-url" in (status.endpoint.reason or "")


def test_stopped_conversations_are_listed_and_only_looked_up_when_the_record_counts_some() -> None:
    stopped = StoppedConversation(conversation_id="order-42", webhook_id="msg_9", since=at(HOUR))
    counted, _, _ = service(stops=MemoryStops(stopped), stopped_conversations=1)
    none, _, no_stops = service(stops=MemoryStops(stopped))

    assert counted.status(ACME).stopped_conversations == [stopped]
    assert none.status(ACME).stopped_conversations == [] and no_stops.reads == 0


def test_a_client_deleted_since_its_token_was_checked_is_refused() -> None:
    flow, _, _ = service()

    with pytest.raises(Unauthorized):
        flow.status(Caller("gone"))


def test_deliveries_until_before_since_is_an_empty_window() -> None:
    flow, _, _ = service(attempt(NOW - HOUR, webhook_id="in-neither"))
    query = DeliveriesQuery(since=at(0), until=at(HOUR))

    page = flow.deliveries(ACME, query)

    assert (page.attempts, page.cursor) == ([], None)


def test_deliveries_are_the_callers_own_newest_first() -> None:
    flow, log, _ = service(attempt(NOW - 2 * HOUR, webhook_id="old"), attempt(NOW - HOUR, webhook_id="new"))
    log.write([("globex", attempt(NOW, webhook_id="theirs"))])

    page = flow.deliveries(ACME, DeliveriesQuery(since=at(3 * HOUR)))

    assert [a.webhook_id for a in page.attempts] == ["new", "old"]


# ── POST /client/test ──


def test_a_test_delivery_is_signed_posted_now_recorded_and_answered() -> None:
    w = World()
    w.receiver.answers.append(Answer(200, {}, b"ok, got it"))

    answered = w.flow.test(ACME)

    ((url, body, headers),) = w.receiver.posts
    delivered = Webhook(w.clients.secret).verify(body, headers)
    assert url == "https://acme.example/hook" and delivered["type"] == "test" and delivered["clientId"] == "acme"
    assert headers["webhook-id"] == answered.webhook_id
    assert (answered.trigger, answered.status, answered.failure, answered.body) == (
        Trigger.TEST,
        200,
        None,
        "ok, got it",
    )
    assert w.log.records == [("acme", answered)]


@pytest.mark.parametrize(
    ("answer", "status", "failure"),
    [
        (Answer(418, {}, b"I'm a teapot"), 418, Failure.HTTP),
        (Answer(410, {}), 410, Failure.HTTP),
        (PostFailed("no answer in time", kind=Failure.TIMEOUT), None, Failure.TIMEOUT),
    ],
)
def test_a_failed_test_delivery_is_answered_with_what_failed(
    answer: Answer | PostFailed, status: int | None, failure: Failure
) -> None:
    w = World()
    w.receiver.answers.append(answer)

    answered = w.flow.test(ACME)

    assert (answered.status, answered.failure, answered.delivered) == (status, failure, False)
    assert w.clients.profiles["acme"].response_url_off is False, "a test's 410 does not switch the URL off"


def test_a_test_delivery_during_a_rotations_grace_carries_both_signatures() -> None:
    w = World()
    old = w.clients.secret
    w.flow.rotate_secret(ACME, SecretRotation(grace_seconds=3600))

    w.flow.test(ACME)

    ((_, body, headers),) = w.receiver.posts
    for secret in (old, w.clients.secret):
        Webhook(secret).verify(body, headers)


def test_a_test_without_a_response_url_is_refused_saying_how_to_set_one() -> None:
    w = World(response_url=None)

    with pytest.raises(NoResponseUrl, match="PUT /client/response-url"):
        w.flow.test(ACME)

    assert w.receiver.posts == [] and w.log.records == []


# ── PUT /client/response-url ──


def test_a_new_url_switches_the_endpoint_on_and_resumes_its_parked_conversations() -> None:
    w = World(
        stops=MemoryStops(parked=["c-1", "c-2"]),
        endpoint_state=EndpointState.PARKED,
        parked_conversations=2,
        endpoint_parked_at=at(HOUR),
    )

    status = w.flow.set_response_url(ACME, ResponseUrlChange(response_url="https://new.example/hook"))

    assert status.response_url == "https://new.example/hook" and status.endpoint.state == "healthy"
    assert w.nudged == [("acme", ["c-1", "c-2"])]


def test_a_url_after_a_410_is_switched_on_and_nothing_is_nudged_without_parked_conversations() -> None:
    w = World(response_url_off=True)

    status = w.flow.set_response_url(ACME, ResponseUrlChange(response_url="https://acme.example/hook"))

    assert status.endpoint.state == "healthy" and w.nudged == []


def test_clearing_the_url_leaves_no_webhook() -> None:
    w = World(stops=MemoryStops(parked=["c-1"]), endpoint_state=EndpointState.DISABLED, parked_conversations=1)

    status = w.flow.set_response_url(ACME, ResponseUrlChange(response_url=None))

    assert status.response_url is None and status.endpoint.state == "off" and w.nudged == []


# ── POST /client/signing-secret ──


def test_a_new_secret_is_answered_once_with_the_end_of_the_previous_ones_grace() -> None:
    w = World()
    old = w.clients.secret

    new = w.flow.rotate_secret(ACME, SecretRotation(grace_seconds=7200))

    assert new.signing_secret.startswith("whsec_") and new.signing_secret == w.clients.secret != old
    assert new.previous_valid_until == at(-7200)
    assert w.clients.previous == (old, at(-7200))


def test_the_default_grace_is_rotates_and_zero_ends_the_previous_secret_now() -> None:
    w = World()

    assert w.flow.rotate_secret(ACME, SecretRotation()).previous_valid_until == at(0) + timedelta(hours=24)
    assert w.flow.rotate_secret(ACME, SecretRotation(grace_seconds=0)).previous_valid_until == at(0)
    assert w.clients.previous is None


def test_failures_before_the_url_was_switched_on_no_longer_count() -> None:
    w = World(attempt(NOW - HOUR, status=500, failure="http"))
    assert w.flow.status(ACME).endpoint.state == "failing"

    status = w.flow.set_response_url(ACME, ResponseUrlChange(response_url="https://acme.example/hook"))

    assert status.endpoint.state == "healthy"
    assert status.last_failure is not None, "still in the attempt log"


def test_every_self_service_route_counts_against_the_clients_rate() -> None:
    w = World()
    calls = [
        lambda: w.flow.status(ACME),
        lambda: w.flow.deliveries(ACME, DeliveriesQuery()),
        lambda: w.flow.test(ACME),
        lambda: w.flow.set_response_url(ACME, ResponseUrlChange(response_url="https://acme.example/hook")),
        lambda: w.flow.rotate_secret(ACME, SecretRotation()),
    ]
    for call in calls:
        call()

    assert w.buckets.writes == len(calls)
    w.buckets.spend("acme", RateLimit(DEFAULT_RATE))
    for call in calls:
        with pytest.raises(RateLimited):
            call()
