"""Client self-service with in-memory stores and a clock of the test's own: GET /client's view of the endpoint and
its attempts, GET /deliveries' checks. The real stores (moto) are tests/integration/test_self_service.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from memory import EPOCH, MemoryAttemptLog, attempt

from relay.attempts import DeliveriesQuery
from relay.caller import Caller
from relay.client_status import ClientProfile, StoppedConversation
from relay.endpoints import EndpointState
from relay.errors import InvalidRequest, Unauthorized
from relay.flows.self_service import SelfService

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

    def profile(self, client_id: str) -> ClientProfile | None:
        return self.profiles.get(client_id)


class MemoryStops:
    def __init__(self, *stopped: StoppedConversation) -> None:
        self.stopped = list(stopped)
        self.reads = 0

    def stops_of(self, client_id: str) -> list[StoppedConversation]:
        self.reads += 1
        return self.stopped


def service(
    *attempts: Any, stops: MemoryStops | None = None, **fields: Any
) -> tuple[SelfService, MemoryAttemptLog, MemoryStops]:
    log = MemoryAttemptLog()
    log.write([("acme", a) for a in attempts])
    stops = stops or MemoryStops()
    return SelfService(MemoryClients(**fields), log, stops, clock=lambda: NOW), log, stops


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


def test_deliveries_until_before_since_is_refused_naming_until() -> None:
    flow, _, _ = service()
    query = DeliveriesQuery(since=at(0), until=at(HOUR))

    with pytest.raises(InvalidRequest) as refused:
        flow.deliveries(ACME, query)

    assert refused.value.field == "until"


def test_deliveries_are_the_callers_own_newest_first() -> None:
    flow, log, _ = service(attempt(NOW - 2 * HOUR, webhook_id="old"), attempt(NOW - HOUR, webhook_id="new"))
    log.write([("globex", attempt(NOW, webhook_id="theirs"))])

    page = flow.deliveries(ACME, DeliveriesQuery(since=at(3 * HOUR)))

    assert [a.webhook_id for a in page.attempts] == ["new", "old"]
