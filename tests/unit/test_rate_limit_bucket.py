"""Clients' buckets in the template's rate limits table on moto, on a test clock: what a client's requests get."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from memory import Clock

from devstack.provision import create_table
from devstack.template import load
from relay.rate_limits import DEFAULT_RATE, MAX_RATE, RateLimit, Verdict
from relay.settings import InboundSettings
from relay.stores.rate_limits import RateLimits

TABLE = "relay-RateLimitsTable"
LIMIT = RateLimit(rate=5)  # bursts of 10


class OneWriteAtATime:
    """The table's client as DynamoDB behaves for one item: its writes apply one at a time. moto's backends are
    not thread-safe, so the tests' containers take turns per call (as the local stack's moto does, devstack.aws);
    what a container knows between its calls is still as stale as it would be."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.writes = 0

    def update_item(self, **request: Any) -> Any:
        with self._lock:
            self.writes += 1
            return self._client.update_item(**request)


@pytest.fixture
def dynamodb(aws: boto3.Session) -> OneWriteAtATime:
    client = aws.client("dynamodb")
    create_table(client, TABLE, load()["Resources"]["RateLimitsTable"]["Properties"])
    return OneWriteAtATime(client)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def container(dynamodb: OneWriteAtATime, clock: Clock) -> RateLimits:
    """The store as one container of the client API has it: its own memory of the buckets."""
    return RateLimits(dynamodb, TABLE, clock=clock.wall)


def take(limits: RateLimits, times: int, client_id: str = "acme", limit: RateLimit = LIMIT) -> list[Verdict]:
    return [limits.take(client_id, limit) for _ in range(times)]


def admitted(verdicts: list[Verdict]) -> int:
    return sum(verdict.admitted for verdict in verdicts)


def test_a_client_gets_its_burst_at_once_then_is_refused_until_a_request_is_paid_for(
    dynamodb: OneWriteAtATime, clock: Clock
) -> None:
    limits = container(dynamodb, clock)

    verdicts = take(limits, 12)

    assert [v.admitted for v in verdicts] == [True] * 10 + [False] * 2
    assert [v.remaining for v in verdicts[:10]] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    refused = verdicts[10]
    # Ten requests at 0.2 s each: full again in 2 s; the next one is paid for in 0.2 s, said as a whole second.
    assert (refused.limit, refused.remaining, refused.reset_seconds, refused.retry_after_seconds) == (10, 0, 2, 1)
    assert verdicts[0].reset_seconds == 1 and verdicts[9].reset_seconds == 2


def test_the_bucket_refills_at_the_rate_and_a_refused_request_costs_nothing(
    dynamodb: OneWriteAtATime, clock: Clock
) -> None:
    limits = container(dynamodb, clock)
    take(limits, 10)
    take(limits, 50)  # refused: none of them is counted

    clock.sleep(1.0)
    assert admitted(take(limits, 10)) == 5

    clock.sleep(0.2)
    assert admitted(take(limits, 10)) == 1

    clock.sleep(60)
    assert admitted(take(limits, 20)) == 10


def test_a_refusal_says_when_the_next_request_is_admitted(dynamodb: OneWriteAtATime, clock: Clock) -> None:
    limit = RateLimit(rate=1)  # bursts of 2: one request a second
    limits = container(dynamodb, clock)
    take(limits, 2, limit=limit)

    (refused,) = take(limits, 1, limit=limit)
    clock.sleep(refused.retry_after_seconds - 0.001)
    (early,) = take(limits, 1, limit=limit)
    clock.sleep(0.001)
    (on_time,) = take(limits, 1, limit=limit)

    assert (refused.admitted, early.admitted, on_time.admitted) == (False, False, True)


def test_two_clients_have_buckets_of_their_own(dynamodb: OneWriteAtATime, clock: Clock) -> None:
    limits = container(dynamodb, clock)

    flood = take(limits, 100, "flood")
    quiet = take(limits, 10, "quiet")

    assert admitted(flood) == 10
    assert admitted(quiet) == 10


def test_a_container_that_saw_the_bucket_over_its_burst_refuses_without_a_write(
    dynamodb: OneWriteAtATime, clock: Clock
) -> None:
    limits = container(dynamodb, clock)
    take(limits, 11)
    writes = dynamodb.writes

    assert limits.over("acme", LIMIT) == take(limits, 1)[0]
    assert dynamodb.writes == writes
    assert limits.over("other", LIMIT) is None  # never seen: only the table knows

    clock.sleep(0.2)
    assert limits.over("acme", LIMIT) is None and take(limits, 1)[0].admitted


def test_containers_guessing_from_what_they_last_saw_still_admit_exactly_the_burst(
    dynamodb: OneWriteAtATime, clock: Clock
) -> None:
    """One container saw the bucket idle, another made it busy: the first's guess fails and is put right."""
    first, second = container(dynamodb, clock), container(dynamodb, clock)
    take(first, 1)
    clock.sleep(10)  # idle again, as far as `first` knows
    take(second, 5)  # busy

    writes = dynamodb.writes
    verdicts = take(first, 10)

    assert admitted(verdicts) == 5
    assert dynamodb.writes - writes == 1 + 5  # the wrong guess, then one write per admitted request; refused: none


def test_concurrent_containers_admit_no_more_than_the_burst_and_the_rate(
    dynamodb: OneWriteAtATime, clock: Clock
) -> None:
    containers = [container(dynamodb, clock) for _ in range(8)]

    def flood(limits: RateLimits, verdicts: list[Verdict]) -> None:
        verdicts += take(limits, 20)

    def all_at_once() -> int:
        results: list[list[Verdict]] = [[] for _ in containers]
        threads = [threading.Thread(target=flood, args=pair) for pair in zip(containers, results, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(admitted(verdicts) for verdicts in results)

    assert all_at_once() == 10
    clock.sleep(1.0)
    assert all_at_once() == 5
    clock.sleep(0.6)
    assert all_at_once() == 3


def test_an_item_that_keeps_changing_under_every_try_is_a_refusal(clock: Clock) -> None:
    class Vanishing:
        def update_item(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": ""}}, "UpdateItem")

    verdict = RateLimits(Vanishing(), TABLE, clock=clock.wall).take("acme", LIMIT)

    assert not verdict.admitted and verdict.retry_after_seconds == 1


def test_the_stacks_default_rate_is_the_relays() -> None:
    parameter = load()["Parameters"]["ClientRateLimit"]

    assert parameter["Default"] == DEFAULT_RATE == InboundSettings.model_fields["client_rate_limit"].default
    assert (parameter["MinValue"], parameter["MaxValue"]) == (1, MAX_RATE)


@pytest.mark.parametrize("rate", [1, 3, 7, 20, MAX_RATE])
def test_an_interval_rounded_to_microseconds_never_exceeds_the_rate(rate: int) -> None:
    limit = RateLimit(rate)

    assert limit.interval * rate >= 1_000_000
    assert limit.burst == 2 * rate
