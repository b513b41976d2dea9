"""The attempt log on moto: the delivery function records every attempt (one batch write per invocation), and a
client reads its own with GET /deliveries, newest first, filtered and paged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer

from devstack.esm import EventSourceMapping
from devstack.lambdas import LocalFunction
from harness import Relay, scripted
from relay.attempts import Attempt, Outcome, Trigger
from relay.stores.attempts import AttemptLog

# Retried at once; the breaker kept out of the way (it has tests of its own).
QUICK = {"CACHE_TTL_SECONDS": "0.5", "DELIVERY_RETRY_SCHEDULE": "0", "ENDPOINT_FAILURE_THRESHOLD": "1000"}


@pytest.fixture
def relay(relay: Relay) -> Relay:
    relay.delivery = LocalFunction(relay.delivery.spec, QUICK)
    relay.mapping = EventSourceMapping(relay.sqs, relay.delivery)
    return relay


def deliveries(relay: Relay, token: str, **query: Any) -> dict[str, Any]:
    answer = relay.call("GET", "/deliveries", token, **query)
    assert answer.status == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_every_attempt_is_shown_newest_first_with_its_status_and_the_answers_first_kilobyte(
    relay: Relay, receiver: HTTPServer
) -> None:
    url = scripted(receiver, {"first": [(500, "database down"), (503, "x" * 3000)]})
    _, token = relay.add_client("acme", response_url=url)
    first, second = relay.say(token, "c-1", "first", "second")

    relay.drain()

    attempts = deliveries(relay, token)["attempts"]
    assert [(a["webhookId"], a["attempt"], a["status"], a["failure"]) for a in attempts] == [
        (second, 1, 204, None),
        (first, 3, 204, None),
        (first, 2, 503, "http"),
        (first, 1, 500, "http"),
    ]
    assert attempts[3]["body"] == "database down" and attempts[2]["body"] == "x" * 1024
    assert {(a["conversationId"], a["type"], a["trigger"]) for a in attempts} == {("c-1", "text", "schedule")}
    assert all(isinstance(a["durationMs"], int) and a["at"].endswith("Z") for a in attempts)
    assert deliveries(relay, token)["cursor"] is None


def test_filters_and_a_cursor_walk_every_matching_attempt_once_in_order(relay: Relay, receiver: HTTPServer) -> None:
    url = scripted(receiver, {"a": [(500, "")], "b": [(502, "")]})
    _, token = relay.add_client("acme", response_url=url)
    (a,) = relay.say(token, "c-1", "a")
    relay.drain()  # before b: each in its own batches, so a's attempts are all older than b's
    (b,) = relay.say(token, "c-2", "b")
    relay.drain()
    everything = deliveries(relay, token)["attempts"]

    walked, cursor = [], None
    while True:
        page = deliveries(relay, token, limit=1, **({"cursor": cursor} if cursor else {}))
        walked += page["attempts"]
        if (cursor := page["cursor"]) is None:
            break

    assert walked == everything and len(everything) == 4
    assert [x["webhookId"] for x in deliveries(relay, token, status="failed")["attempts"]] == [b, a]
    assert {x["webhookId"] for x in deliveries(relay, token, status="delivered")["attempts"]} == {a, b}
    assert {x["webhookId"] for x in deliveries(relay, token, conversationId="c-2")["attempts"]} == {b}
    assert len(deliveries(relay, token, webhookId=a, status="delivered")["attempts"]) == 1
    newest = everything[0]["at"]
    assert deliveries(relay, token, since=newest)["attempts"] == everything[:1]
    assert deliveries(relay, token, until=everything[1]["at"])["attempts"] == everything[1:]


def test_a_client_sees_only_its_own_attempts(relay: Relay, receiver: HTTPServer) -> None:
    url = scripted(receiver, {})
    _, acme = relay.add_client("acme", response_url=url)
    _, globex = relay.add_client("globex", response_url=url)
    relay.say(acme, "c-1", "hello")
    relay.drain()

    assert len(deliveries(relay, acme)["attempts"]) == 1
    assert deliveries(relay, globex) == {"attempts": [], "cursor": None}


BAD_QUERIES = [
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"status": "lost"}, "status"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-01-01T00:00:00"}, "until"),  # no offset: which time would it be?
    ({"since": "1700000000"}, "since"),  # seconds: not RFC 3339
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"color": "red"}, "color"),
]


def test_a_bad_query_is_refused_naming_the_parameter(relay: Relay) -> None:
    _, token = relay.add_client("acme")

    answers = [relay.call("GET", "/deliveries", token, **query) for query, _ in BAD_QUERIES]

    assert [(a.status, a.json()["errors"][0]["field"]) for a in answers] == [(400, field) for _, field in BAD_QUERIES]


def test_a_cursor_of_another_query_is_refused(relay: Relay, receiver: HTTPServer) -> None:
    url = scripted(receiver, {"a": [(500, "")]})
    _, token = relay.add_client("acme", response_url=url)
    relay.say(token, "c-1", "a")
    relay.drain()
    cursor = deliveries(relay, token, limit=1)["cursor"]

    answer = relay.call("GET", "/deliveries", token, status="failed", cursor=cursor)

    assert answer.status == 400 and answer.json()["errors"][0]["field"] == "cursor"


def test_a_conversation_token_cannot_read_deliveries(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    grant = relay.mint_token(token, "c-1", {"userId": "alice"}).json()["token"]

    answer = relay.call("GET", "/deliveries", grant)

    assert answer.status == 403
    assert "client token" in answer.json()["message"]


def test_records_dynamodb_refuses_are_logged_and_the_delivery_goes_on(
    aws: boto3.Session, caplog: pytest.LogCaptureFixture
) -> None:
    log = AttemptLog(aws.client("dynamodb"), "no-such-table")
    record = Attempt.of(
        Outcome(204, None, "", 12),
        webhook_id="msg_1",
        conversation_id="c-1",
        type="text",
        attempt=1,
        trigger=Trigger.SCHEDULE,
        at=datetime.now(UTC),
    )

    with caplog.at_level(logging.ERROR):
        log.write([("acme", record)])

    assert "attempt records not written" in caplog.text
