"""POST /client/recover with in-memory stores: which responses go back, in which jobs, and what a job does on the
delivery function's side. The real path (moto, the delivery queue) is tests/integration/test_self_service.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import memory
import pytest
from memory import EPOCH, Clock, MemoryAttemptLog, MemoryLog, attempt, client_response

from relay.attempts import TEST_CONVERSATION, Skip
from relay.caller import Caller
from relay.client_status import StoppedConversation
from relay.deliveries import RecoverJob
from relay.flows import recovery
from relay.flows.recovery import RecoverRequest, Recovery, requeue_job
from relay.flows.throttling import Throttle
from relay.models import ClientResponse
from relay.rate_limits import DEFAULT_RATE

ACME = Caller("acme")
MINUTE = 60.0


class MemoryState:
    def __init__(self) -> None:
        self.stops: list[StoppedConversation] = []
        self.parked_conversations: list[str] = []
        self.forgotten: list[str] = []

    def stops_of(self, client_id: str) -> list[StoppedConversation]:
        return self.stops

    def parked(self, client_id: str) -> list[str]:
        return self.parked_conversations

    def forget_attempts(self, webhook_ids: Sequence[str]) -> None:
        self.forgotten += webhook_ids


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.log = MemoryLog(self.clock)
        self.attempts = MemoryAttemptLog()
        self.state = MemoryState()
        self.jobs: list[RecoverJob] = []
        self.flow = Recovery(
            self.attempts,
            self.state,
            self.log,
            self.jobs.extend,
            throttle=Throttle(
                memory.MemoryBuckets(self.clock),
                memory.MemoryClients("acme"),
                DEFAULT_RATE,
                events=memory.MemoryEvents(),
            ),
            clock=self.clock.wall,
        )
        self._positions: dict[str, int] = {}

    def said(self, conversation: str, *texts: str) -> list[ClientResponse]:
        """The bot's responses, recorded in the log now, a second apart."""
        responses = []
        for text in texts:
            response = client_response(conversation, text)
            position = self._positions[conversation] = self._positions.get(conversation, 0) + 1
            self.log.record(position, response, response.to_json())
            self.clock.sleep(1)
            responses.append(response)
        return responses

    def tried(self, response: ClientResponse, *, delivered: bool) -> None:
        fields = {"status": 204} if delivered else {"status": 500, "failure": "http"}
        record = attempt(
            self.clock.wall(), webhook_id=response.webhook_id, conversation_id=response.conversation_id, **fields
        )
        self.attempts.write([("acme", record)])

    def recovered(self) -> dict[str, list[str]]:
        """Each job's responses by text, per conversation, in the jobs' order."""
        texts: dict[str, list[str]] = {}
        for job in self.jobs:
            entries = {e.position: e for e in self.log.entries[f"acme:{job.conversation_id}"]}
            texts.setdefault(job.conversation_id, []).extend(
                entries[p].response()["payload"]["text"] for p in job.positions
            )
        return texts


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(EPOCH + seconds, UTC)


def test_from_the_first_failure_in_the_window_every_response_not_delivered_goes_back_in_order() -> None:
    w = World()
    (early,) = w.said("c", "early")
    w.tried(early, delivered=True)  # at 1 s
    (failed,) = w.said("c", "failed")
    w.tried(failed, delivered=False)  # at 2 s
    _, done = w.said("c", "behind", "done")
    w.tried(done, delivered=True)  # at 4 s: a response delivered since is not sent again
    w.said("c", "later")  # recorded at 4 s, after until

    answer = w.flow.recover(ACME, RecoverRequest(since=at(1.5), until=at(3.5)))

    assert w.recovered() == {"c": ["failed", "behind"]}, "not before the failure, nor after until"
    assert answer.model_dump() == {"responses": 2, "conversations": 1}


def test_a_stopped_conversation_starts_at_the_response_it_stopped_at_even_before_the_window() -> None:
    w = World()
    stuck, _ = w.said("s", "stuck", "after")
    w.clock.sleep(10 * MINUTE)
    w.state.stops.append(StoppedConversation(conversation_id="s", webhook_id=stuck.webhook_id))

    w.flow.recover(ACME, RecoverRequest(since=at(5 * MINUTE)))

    assert w.recovered() == {"s": ["stuck", "after"]}


def test_skipped_responses_of_an_endpoint_that_was_off_go_back() -> None:
    w = World()
    (skipped,) = w.said("k", "skipped")
    w.attempts.write([("acme", Skip(skipped.webhook_id, "k", at(w.clock.now)))])

    w.flow.recover(ACME, RecoverRequest(since=at(0)))

    assert w.recovered() == {"k": ["skipped"]}


def test_parked_and_test_conversations_are_left_alone_and_other_clients_untouched() -> None:
    w = World()
    (parked,) = w.said("p", "parked")
    w.tried(parked, delivered=False)
    w.state.parked_conversations.append("p")
    w.attempts.write([("acme", attempt(w.clock.wall(), conversation_id=TEST_CONVERSATION, status=418, failure="http"))])
    (theirs,) = w.said("g", "theirs")
    w.attempts.write(
        [
            (
                "globex",
                attempt(w.clock.wall(), webhook_id=theirs.webhook_id, conversation_id="g", status=500, failure="http"),
            )
        ]
    )

    answer = w.flow.recover(ACME, RecoverRequest(since=at(0)))

    assert w.jobs == [] and answer.model_dump() == {"responses": 0, "conversations": 0}


def test_a_long_conversation_goes_back_in_jobs_of_at_most_the_limit_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "JOB_MAX_POSITIONS", 2)
    w = World()
    first, *_ = w.said("c", "r1", "r2", "r3", "r4", "r5")
    w.tried(first, delivered=False)

    answer = w.flow.recover(ACME, RecoverRequest(since=at(0)))

    assert [len(job.positions) for job in w.jobs] == [2, 2, 1]
    assert w.recovered() == {"c": ["r1", "r2", "r3", "r4", "r5"]}
    assert answer.model_dump() == {"responses": 5, "conversations": 1}


def test_a_window_that_ends_before_it_begins_recovers_nothing() -> None:
    w = World()
    (failed,) = w.said("c", "failed")
    w.tried(failed, delivered=False)

    answer = w.flow.recover(ACME, RecoverRequest(since=at(10), until=at(0)))

    assert w.jobs == [] and answer.model_dump() == {"responses": 0, "conversations": 0}


def test_a_job_puts_its_responses_back_in_order_with_a_fresh_schedule() -> None:
    w = World()
    responses = w.said("c", "r1", "r2", "r3", "r4")
    requeued: list[str] = []

    count = requeue_job(
        RecoverJob(client_id="acme", conversation_id="c", positions=[2, 4]), w.log, w.state, requeued.extend
    )

    assert count == 2
    assert [ClientResponse.model_validate_json(body).payload["text"] for body in requeued] == ["r2", "r4"]
    assert requeued == [responses[1].to_json(), responses[3].to_json()], "byte for byte as published"
    assert w.state.forgotten == [responses[1].webhook_id, responses[3].webhook_id]
