"""POST /client/recover: deliver again, from the responses log and in each conversation's order, every response of
the client whose delivery failed, was dead-lettered or skipped in a window, keeping its webhook-id; nothing is
published to SNS again.

The client API chooses the responses (reads only) and answers with how many; the work is done in the background
on the delivery queue: one job per conversation (RecoverJob, at most JOB_MAX_POSITIONS responses each, in the
conversation's message group), which the delivery function turns into the responses themselves, back on the
queue behind it, each with the whole schedule again (requeue_job).

Which responses: the conversations with a failed attempt or a skipped response (its endpoint off) in the window,
and the stopped ones; in each, every response from the first of those on, recorded up to `until`, that the attempt
log does not show delivered since `since`. A stopped conversation starts at the response it stopped at, even
before the window: nothing after it can be delivered before it. A parked conversation is left alone: it is
delivered from the log when its endpoint is back (a probe, or PUT /client/response-url).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ConfigDict

from relay.attempts import TEST_CONVERSATION, UtcTime
from relay.caller import Caller
from relay.client_status import StoppedConversation
from relay.deliveries import RecoverJob
from relay.errors import Forbidden, InvalidRequest, RateLimited, RelayError, TooLarge, Unauthorized
from relay.flows.throttling import Throttle
from relay.models import CamelModel, ClientResponse
from relay.observability import logger, metrics
from relay.stores.responses_log import PAGE_MAX_RESPONSES, Recorded

REFUSALS: tuple[type[RelayError], ...] = (Unauthorized, Forbidden, InvalidRequest, TooLarge, RateLimited)
"""What POST /client/recover can refuse a request with."""

JOB_MAX_POSITIONS = 500
"""The most responses one job carries: its message stays far under SQS's 256 KiB, its work under a second."""


class RecoverRequest(CamelModel):
    """The body of POST /client/recover."""

    model_config = ConfigDict(extra="forbid")

    since: UtcTime
    """The window's start (RFC 3339)."""
    until: UtcTime | None = None
    """The window's end (RFC 3339); now when left out."""


class RecoverAnswer(CamelModel):
    """What a recover puts back on the delivery queue (in the background)."""

    responses: int
    conversations: int


class Log(Protocol):
    """What recovery reads of the responses log (relay.stores.responses_log.ResponsesLog)."""

    def after(self, client_id: str, conversation_id: str, position: int, limit: int) -> list[Recorded]: ...


class Attempts(Protocol):
    """What recovery reads of the attempt log (relay.stores.attempts.AttemptLog)."""

    def undelivered(self, client_id: str, since: datetime, until: datetime) -> list[tuple[str, str]]: ...
    def delivered(self, client_id: str, since: datetime, conversation_ids: Sequence[str]) -> set[str]: ...


class State(Protocol):
    """What choosing needs of the delivery state (relay.stores.delivery_state.DeliveryState)."""

    def stops_of(self, client_id: str) -> list[StoppedConversation]: ...
    def parked(self, client_id: str) -> list[str]: ...


class Counters(Protocol):
    """What a job needs of the delivery state (relay.stores.delivery_state.DeliveryState)."""

    def forget_attempts(self, webhook_ids: Sequence[str]) -> None: ...


class Recovery:
    """The client API's part: choose, count, and hand the jobs to the delivery queue."""

    def __init__(
        self,
        attempts: Attempts,
        state: State,
        log: Log,
        jobs: Callable[[Sequence[RecoverJob]], None],
        *,
        throttle: Throttle | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`jobs` hands the jobs to the delivery queue; each request counts against the client's rate (`throttle`;
        None for an operator's, relay-clients)."""
        self._attempts = attempts
        self._state = state
        self._log = log
        self._jobs = jobs
        self._throttle = throttle
        self._clock = clock

    def recover(self, caller: Caller, request: RecoverRequest) -> RecoverAnswer:
        client_id = caller.client_id
        if self._throttle is not None:
            self._throttle.take(client_id)
        since, until = request.since, request.until or datetime.fromtimestamp(self._clock(), UTC)
        if until < since:
            return RecoverAnswer(responses=0, conversations=0)  # an empty window
        starts: dict[str, set[str]] = {}
        for conversation, webhook_id in self._attempts.undelivered(client_id, since, until):
            starts.setdefault(conversation, set()).add(webhook_id)
        stops = {stop.conversation_id: stop.webhook_id for stop in self._state.stops_of(client_id)}
        for conversation, webhook_id in stops.items():
            starts[conversation] = {webhook_id}  # nothing of it is delivered before the response it stopped at
        for left_alone in {TEST_CONVERSATION, "", *self._state.parked(client_id)}:
            starts.pop(left_alone, None)
        delivered = self._attempts.delivered(client_id, since, sorted(starts))
        jobs = []
        for conversation, first in sorted(starts.items()):
            positions = self._chosen(client_id, conversation, first, until, delivered)
            jobs += [
                RecoverJob(client_id=client_id, conversation_id=conversation, positions=positions[start:end])
                for start, end in _chunks(len(positions))
            ]
        self._jobs(jobs)
        answer = RecoverAnswer(
            responses=sum(len(job.positions) for job in jobs), conversations=len({job.conversation_id for job in jobs})
        )
        metrics.add_metric(name="RecoverRequested", unit=MetricUnit.Count, value=1)
        logger.info("recover queued", extra={**answer.model_dump(), "since": str(since), "until": str(until)})
        return answer

    def _chosen(
        self, client_id: str, conversation: str, first: set[str], until: datetime, delivered: set[str]
    ) -> list[int]:
        """The conversation's responses from the first of `first` on, recorded up to `until`, not delivered."""
        chosen: list[int] = []
        started, position = False, 0
        while page := self._log.after(client_id, conversation, position, PAGE_MAX_RESPONSES):
            for entry in page:
                if entry.recorded_at > until.timestamp():
                    return chosen
                webhook_id = ClientResponse.model_validate_json(entry.body).webhook_id
                started = started or webhook_id in first
                if started and webhook_id not in delivered:
                    chosen.append(entry.position)
            position = page[-1].position
        return chosen


def requeue_job(job: RecoverJob, log: Log, state: Counters, requeue: Callable[[Sequence[str]], None]) -> int:
    """The delivery function's part of a recover: the job's responses back on the delivery queue, in order, each with
    the whole schedule again; returns how many."""
    wanted = set(job.positions)
    bodies: list[str] = []
    position, last = min(job.positions, default=1) - 1, max(job.positions, default=0)
    while position < last and (page := log.after(job.client_id, job.conversation_id, position, PAGE_MAX_RESPONSES)):
        bodies += [entry.body for entry in page if entry.position in wanted]
        position = page[-1].position
    state.forget_attempts([ClientResponse.model_validate_json(body).webhook_id for body in bodies])
    requeue(bodies)
    logger.info("recovered responses queued", extra={"client_id": job.client_id, "responses": len(bodies)})
    return len(bodies)


def _chunks(count: int) -> list[tuple[int, int]]:
    return [(start, min(start + JOB_MAX_POSITIONS, count)) for start in range(0, count, JOB_MAX_POSITIONS)]
