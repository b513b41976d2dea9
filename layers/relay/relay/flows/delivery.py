"""Delivery of bot responses to clients' response URLs: signed, in order per conversation, retried, never with gaps.

A batch's conversations (SQS message groups) are delivered in parallel, each strictly in order; a failing
conversation holds up only itself. A response's attempt number is the number of times it was actually POSTed:
a failed attempt costs one DynamoDB write (its counter). Every attempt is recorded in the attempt log, the
invocation's records in one write at its end; a delivery costs no other AWS call (a delivery after earlier
failures reads its counter, for its attempt number).

When a response has used every attempt of the schedule, its conversation stops there: that response and every
later one of the conversation go to the dead-letter queue in order, so a redrive replays the conversation whole,
and nothing later is delivered before it. The stop is recorded (a stop item, and a count on the client record
that tells the other containers to look it up); it ends when the response it stopped at comes back from the
dead-letter queue.

The flow is given the batch's queued responses and returns a decision for each (relay.deliveries); the queue's
adapter applies them, and hands the flow that as `apply`, so the flow knows when its dead letters are sent.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from relay.adapters.outbound import CONCURRENT_REQUESTS
from relay.adapters.webhook import DeliveryFailed, ResponseUrlGone, WebhookSender
from relay.attempts import Attempt, Outcome, Skip, Trigger
from relay.deliveries import (
    FAILURES,
    DeadLetter,
    Decision,
    Done,
    Held,
    ProbeEndpoint,
    QueuedResponse,
    Release,
    Result,
    ResumeParked,
    Retry,
    StopConversation,
    probe_body,
)
from relay.endpoints import PARKING, Admission, Breakers, Change, EndpointState, Hold, Post, Probe, ProbeClaim, at
from relay.flows.recovery import requeue_job
from relay.models import Client, ClientResponse
from relay.observability import logger, metrics
from relay.operations import (
    ConversationStopped,
    EndpointDisabled,
    EndpointFailing,
    EndpointParked,
    EndpointRecovered,
    OperationalEvent,
    host_of,
)
from relay.settings import DeliverySettings, retry_delay
from relay.stores.clients import TransactItem
from relay.stores.delivery_state import Park, Stop
from relay.stores.responses_log import PAGE_MAX_RESPONSES, Recorded

ATTEMPT_RESERVE_SECONDS = 2
"""An attempt is begun only with the webhook timeout and this much more left: time for the AWS calls after it."""


class Clients(Protocol):
    """What delivery needs of the clients store (relay.stores.clients.ClientStore)."""

    def get(self, client_id: str) -> Client | None: ...
    def forget(self, client_id: str) -> None: ...
    def switch_off_url(self, client_id: str) -> None: ...
    def open_endpoint(self, client_id: str, since: datetime, open_until: datetime, reason: str) -> None: ...
    def claim_probe(self, client_id: str, now: datetime, open_until: datetime) -> ProbeClaim: ...
    def close_endpoint(self, client_id: str) -> None: ...
    def park_endpoint(self, client_id: str, state: EndpointState, now: datetime, reason: str) -> bool: ...
    def parked_counted(self, client_id: str) -> TransactItem: ...
    def parked_uncounted(self, client_id: str) -> TransactItem: ...
    def stop_counted(self, client_id: str) -> TransactItem: ...
    def stop_uncounted(self, client_id: str) -> TransactItem: ...


class State(Protocol):
    """What delivery needs of the delivery state store (relay.stores.delivery_state.DeliveryState)."""

    def count_failed_attempt(self, webhook_id: str) -> int: ...
    def failed_attempts(self, webhook_id: str) -> int: ...
    def forget_attempts(self, webhook_ids: Sequence[str]) -> None: ...
    def stop(self, client_id: str, conversation_id: str, webhook_id: str, counted: TransactItem) -> None: ...
    def stop_of(self, client_id: str, conversation_id: str) -> Stop | None: ...
    def mark_dead_lettered(self, client_id: str, conversation_id: str) -> None: ...
    def resume(self, client_id: str, conversation_id: str, webhook_id: str, uncounted: TransactItem) -> None: ...
    def park(self, client_id: str, conversation_id: str, webhook_id: str, counted: TransactItem) -> bool: ...
    def park_of(self, client_id: str, conversation_id: str) -> Park | None: ...
    def advance_park(self, client_id: str, conversation_id: str, through: str) -> None: ...
    def unpark(self, client_id: str, conversation_id: str, last: str, uncounted: TransactItem) -> None: ...
    def parked(self, client_id: str) -> list[str]: ...


class Log(Protocol):
    """What delivery needs of the responses log (relay.stores.responses_log.ResponsesLog)."""

    def after(self, client_id: str, conversation_id: str, position: int, limit: int) -> list[Recorded]: ...


class AttemptLog(Protocol):
    """Where attempts are recorded (relay.stores.attempts.AttemptLog)."""

    def write(self, records: Sequence[tuple[str, Attempt | Skip]]) -> None: ...


class Events(Protocol):
    """Where operational events go (relay.adapters.operations.OperationsPublisher)."""

    def publish(self, event: OperationalEvent) -> None: ...


class Redeliveries(Protocol):
    """What delivery puts back on the delivery queue (relay.adapters.delivery_queue.DeliveryQueue)."""

    def nudge(self, client_id: str, conversation_ids: Sequence[str]) -> None:
        """A ResumeParked in each conversation's message group."""

    def probe_later(self, client_id: str) -> None:
        """A parked endpoint's ProbeEndpoint."""

    def requeue(self, bodies: Sequence[str]) -> None:
        """A recover's responses, behind its job."""


@dataclass(frozen=True)
class _Turn:
    """One conversation's part of a batch: a decision per response, and the stop whose response it dead-letters."""

    decisions: dict[str, Decision]
    dead_lettered_stop: tuple[str, str] | None = None


class Delivery:
    """The delivery flow: a batch from the delivery queue to the clients' response URLs."""

    def __init__(
        self,
        settings: DeliverySettings,
        clients: Clients,
        state: State,
        webhooks: WebhookSender,
        log: Log,
        queue: Redeliveries,
        *,
        attempts: AttemptLog,
        events: Events,
        logger: Any = logger,
        metrics: Any = metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._log = log
        self._queue = queue
        self._time_left = threading.local()
        self._metrics = metrics
        self._breakers = Breakers(
            settings.endpoint_failure_threshold,
            settings.endpoint_cooldown_seconds,
            settings.endpoint_slow_seconds,
            settings.endpoint_concurrency,
            clock,
        )
        self._clients = clients
        self._state = state
        self._webhooks = webhooks
        self._logger = logger
        self._clock = clock
        self._conversations = ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS, thread_name_prefix="delivery")
        self._attempts = attempts
        self._events = events
        self._records: list[tuple[str, Attempt | Skip]] = []
        self._records_lock = threading.Lock()

    def run(
        self,
        responses: Sequence[QueuedResponse],
        remaining_ms: Callable[[], int],
        apply: Callable[[Mapping[str, Decision], bool], None],
    ) -> dict[str, Decision]:
        """Deliver a batch; then record its attempts in the attempt log, in one write, and count each result."""
        try:
            decisions = self._run(responses, remaining_ms, apply)
        finally:
            with self._records_lock:
                records, self._records = self._records, []
            if records:
                self._attempts.write(records)
        for result, count in Counter(decision.result for decision in decisions.values()).items():
            if result is not Result.NOT_ATTEMPTED:
                self._metrics.add_metric(name=result.value, unit=MetricUnit.Count, value=count)
        return decisions

    def _run(
        self,
        responses: Sequence[QueuedResponse],
        remaining_ms: Callable[[], int],
        apply: Callable[[Mapping[str, Decision], bool], None],
    ) -> dict[str, Decision]:
        """Deliver a batch: its conversations in parallel, each in order. `apply(decisions, release)` carries out
        each conversation's decisions as soon as its part of the batch is done; `release` asks it to delete the
        finished ones at once, so that conversation's next response is not held back by a slower one of the same
        batch (another client's receiver, say). The last conversation to finish leaves that to Lambda, which
        deletes the batch's successes as the invocation returns: a batch of one conversation costs no call."""
        groups: dict[str, list[QueuedResponse]] = {}
        for queued in responses:
            groups.setdefault(queued.conversation, []).append(queued)
        running = [len(groups)]
        lock = threading.Lock()

        def conversation(queue: list[QueuedResponse]) -> dict[str, Decision]:
            turn = self._conversation(queue, remaining_ms)
            with lock:
                running[0] -= 1
                others_running = running[0] > 0
            apply(turn.decisions, others_running)
            # Only once its response is in the dead-letter queue: should sending it fail, the stop's next receive
            # dead-letters it again instead of taking it for a redrive.
            if turn.dead_lettered_stop:
                self._state.mark_dead_lettered(*turn.dead_lettered_stop)
            return turn.decisions

        if len(groups) == 1:  # one conversation: on this thread, sparing a hand-over to another
            turns = [conversation(next(iter(groups.values())))]
        else:
            # Each thread runs in a copy of the invocation's context: that carries context variables only (such
            # as the local stack's record of the function running), not the X-Ray SDK's context, which is
            # thread-local.
            tasks = [(contextvars.copy_context(), group) for group in groups.values()]
            turns = list(self._conversations.map(lambda task: task[0].run(conversation, task[1]), tasks))
        return {message_id: decision for turn in turns for message_id, decision in turn.items()}

    def _has_time(self) -> bool:
        """Whether this conversation's thread may begin one more POST in this invocation."""
        remaining: int = self._time_left.remaining_ms()
        return remaining >= (self._settings.webhook_timeout_seconds + ATTEMPT_RESERVE_SECONDS) * 1000

    # ── one conversation, in order ──

    def _conversation(self, queue: list[QueuedResponse], remaining_ms: Callable[[], int]) -> _Turn:
        decisions: dict[str, Decision] = {}
        stop_checked = park_checked = False
        self._time_left.remaining_ms = remaining_ms
        for index, queued in enumerate(queue):
            if not self._has_time():
                decisions.update(_release(queue[index:], "not enough time left in this invocation"))
                break
            if queued.recover is not None:  # a recover's job: its responses back on the queue, behind it
                requeue_job(queued.recover, self._log, self._state, self._queue.requeue)
                decisions[queued.message_id] = Done(Result.REQUEUED)
                continue
            if queued.resume is not None or queued.probe is not None:
                decision = decisions[queued.message_id] = (
                    self._resume_nudged(queued.resume) if queued.resume else self._probe_parked(queued.probe)
                )
                if isinstance(decision, FAILURES):
                    decisions.update(_release(queue[index + 1 :], "an earlier response failed"))
                    break
                continue
            response = queued.response
            if response is None:
                # Waiting will not fix it; it does not stop its conversation (its ids cannot be read).
                self._logger.error(
                    "malformed response: on to the dead-letter queue",
                    extra={"sqs_message_id": queued.message_id, "message_group_id": queued.conversation},
                )
                decisions[queued.message_id] = DeadLetter("not a client response")
                continue
            client = self._clients.get(response.client_id)
            if not stop_checked and client is not None and client.stopped_conversations > 0:
                stop_checked = True
                if (turn := self._dead_letter_if_stopped(client, response, queue[index:])) is not None:
                    return _Turn({**decisions, **turn.decisions}, turn.dead_lettered_stop)
            if not park_checked and client is not None and client.parked_conversations > 0:
                park_checked = True
                # Parked earlier and its endpoint is back: the parked ones first, in order.
                if client.endpoint_state not in PARKING and (blocked := self._resume(client, response.conversation_id)):
                    decisions[queued.message_id] = blocked
                    decisions.update(_release(queue[index + 1 :], "an earlier response failed"))
                    break
            decision = decisions[queued.message_id] = self._deliver(client, response, queued)
            if isinstance(decision, FAILURES):
                decisions.update(_release(queue[index + 1 :], "an earlier response failed"))
                break
        return _Turn(decisions)

    def _dead_letter_if_stopped(
        self, client: Client, response: ClientResponse, rest: list[QueuedResponse]
    ) -> _Turn | None:
        """None if the conversation is not stopped, or resumes here; else its `rest` in this batch, dead-lettered."""
        stop = self._state.stop_of(client.client_id, response.conversation_id)
        if stop is None:
            return None
        ids = _ids(response)
        if stop.webhook_id == response.webhook_id and stop.dead_lettered:
            self._logger.info("redriven: the conversation goes on from here", extra=ids)
            self._state.resume(
                client.client_id,
                response.conversation_id,
                response.webhook_id,
                self._clients.stop_uncounted(client.client_id),
            )
            self._clients.forget(client.client_id)
            return None
        self._logger.warning(
            "conversation stopped at an undeliverable response: on to the dead-letter queue in order",
            extra={**ids, "stopped_at": stop.webhook_id, "dead_lettered": len(rest)},
        )
        reason = f"its conversation stopped at {stop.webhook_id}"
        stopped_here = stop.webhook_id == response.webhook_id
        return _Turn(
            {queued.message_id: DeadLetter(reason) for queued in rest},
            (client.client_id, response.conversation_id) if stopped_here else None,
        )

    def _deliver(self, client: Client | None, response: ClientResponse, queued: QueuedResponse) -> Decision:
        ids = _ids(response)
        if (reason := _not_for_a_webhook(client)) in SKIPS_KEPT and client is not None:
            # Read afresh before skipping: the client may have switched its URL on within the cache time.
            self._clients.forget(client.client_id)
            client = self._clients.get(client.client_id)
            reason = _not_for_a_webhook(client)
        if reason is not None:
            self._logger.info("not delivered to a webhook", extra={**ids, "reason": reason})
            if reason in SKIPS_KEPT:  # for a recover once the client is back
                skip = Skip(response.webhook_id, response.conversation_id, at(self._clock()))
                with self._records_lock:
                    self._records.append((response.client_id, skip))
            return Done(Result.SKIPPED, reason)
        assert client is not None and client.response_url is not None  # as _not_for_a_webhook found
        endpoint = client.client_id  # a client has one response URL
        with self._breakers.slot(endpoint):
            admission = self._breakers.admit(endpoint, client.endpoint_open_until, client.endpoint_since)
            failing = None if isinstance(admission, Post) else self._failing_for(client)
            self._park_if_failing_long(client, failing)
            if isinstance(admission, Probe):
                # A disabled endpoint is not probed: it waits to be switched on.
                disabled = client.endpoint_state is EndpointState.DISABLED
                admission = Hold(self._breakers.cooldown_seconds) if disabled else self._claim_probe(client, ids)
            if isinstance(admission, Hold):
                if client.endpoint_state in PARKING:
                    return self._park(client, response, ids)
                return self._held(response, failing, admission.seconds, ids)
            # The probe of a parked endpoint: this conversation's parked responses go first.
            parked_probe = client.endpoint_state is EndpointState.PARKED and client.parked_conversations > 0
            if parked_probe and (blocked := self._resume(client, response.conversation_id)):
                return blocked
            trigger = Trigger.PROBE if isinstance(admission, Probe) else queued.trigger
            started = at(self._clock())
            outcome, failure = self._post(client, response.webhook_id, queued.body)
        failed = isinstance(failure, DeliveryFailed)
        attempt = (
            self._state.count_failed_attempt(response.webhook_id)
            if failed
            else self._attempt_number(response.webhook_id, queued.receive_count > 1)
        )
        self._record(response, attempt, trigger, started, outcome)
        if isinstance(failure, ResponseUrlGone):
            self._clients.switch_off_url(client.client_id)
            self._logger.warning(
                "receiver answered 410 Gone: response URL switched off until an operator sets it again",
                extra={**ids, "response_url_host": client.response_url.host},
            )
            return Done(Result.GONE, str(failure))
        if failure is not None and client.endpoint_state is EndpointState.PARKED:
            return self._park(client, response, ids)  # a failed probe: its response leaves the queue like the rest
        if failure is not None:
            return self._failed(response, failure, ids, attempt)
        self._logger.info("delivered", extra=ids)
        return Done(Result.DELIVERED)

    def _post(
        self, client: Client, webhook_id: str, body: str
    ) -> tuple[Outcome, DeliveryFailed | ResponseUrlGone | None]:
        """One POST, its outcome told to the breaker: what it did, and the failure (None when the receiver took
        it)."""
        started = self._clock()
        try:
            outcome = self._webhooks.post(
                str(client.response_url), client.signing_secrets(at(started)), webhook_id, body
            )
        except ResponseUrlGone as gone:
            return gone.outcome, gone
        except DeliveryFailed as failure:
            self._breaker_outcome(client, False, self._clock() - started, str(failure))
            return failure.outcome, failure
        seconds = self._clock() - started
        self._breaker_outcome(client, True, seconds, f"receiver took {seconds:.1f} s to answer")
        return outcome, None

    def _attempt_number(self, webhook_id: str, received_before: bool) -> int:
        """The attempt a POST that did not fail (or got 410) was: only a response received before (or parked) may
        have failed attempts counted, so only then is its counter read."""
        return 1 + (self._state.failed_attempts(webhook_id) if received_before else 0)

    def _record(self, response: ClientResponse, attempt: int, trigger: Trigger, at: datetime, outcome: Outcome) -> None:
        """Keep the attempt for the attempt log, written when the invocation ends."""
        self._keep(
            response.client_id,
            response.webhook_id,
            response.conversation_id,
            response.type,
            attempt,
            trigger,
            at,
            outcome,
        )

    def _keep(
        self,
        client_id: str,
        webhook_id: str,
        conversation_id: str,
        type_: str,
        attempt: int,
        trigger: Trigger,
        at: datetime,
        outcome: Outcome,
    ) -> None:
        record = Attempt.of(
            outcome,
            webhook_id=webhook_id,
            conversation_id=conversation_id,
            type=type_,
            attempt=attempt,
            trigger=trigger,
            at=at,
        )
        with self._records_lock:
            self._records.append((client_id, record))

    # ── parking: a dead endpoint's responses leave the queue; the responses log holds them in order ──

    def _park(self, client: Client, response: ClientResponse, ids: dict[str, str]) -> Decision:
        now = self._clock()
        parked_at = client.endpoint_parked_at.timestamp() if client.endpoint_parked_at else now
        # Not before every container's cached client record shows the park: none may POST past it. (To the
        # millisecond, as the record keeps the time.)
        if (wait := round(parked_at + self._settings.delivery_stop_hold_seconds - now, 3)) > 0:
            return Held(math.ceil(wait), "parking its endpoint")
        parked = self._state.park(
            client.client_id,
            response.conversation_id,
            response.webhook_id,
            self._clients.parked_counted(client.client_id),
        )
        if not parked:  # switched on since this container read the record
            self._clients.forget(client.client_id)
            return Release("its endpoint was switched on meanwhile")
        self._logger.info("parked: in the responses log until its endpoint is back", extra=ids)
        return Done(Result.PARKED, f"its endpoint is {client.endpoint_state}")

    def _resume(self, client: Client, conversation_id: str) -> Decision | None:
        """Deliver the conversation's parked responses from the responses log, in order; None once all are and the
        conversation goes on from the queue, else why the response that called for it waits."""
        park = self._state.park_of(client.client_id, conversation_id)
        if park is None:
            return None
        ids = {"client_id": client.client_id, "conversation_id": conversation_id}
        after, position = park.through or None, 0
        started = park.through is not None
        while page := self._log.after(client.client_id, conversation_id, position, PAGE_MAX_RESPONSES):
            for entry in page:
                position = entry.position
                parked = ClientResponse.model_validate_json(entry.body)
                webhook_id = parked.webhook_id
                if not started:
                    started = webhook_id == park.first
                elif after is not None:
                    after = None if webhook_id == after else after
                    continue
                if not started:
                    continue
                if not self._has_time():
                    return Release("not enough time left in this invocation")
                when = at(self._clock())
                outcome, failure = self._post(client, webhook_id, entry.body)
                self._record(parked, self._attempt_number(webhook_id, True), Trigger.SCHEDULE, when, outcome)
                if failure is not None:
                    self._logger.warning("resuming a parked conversation failed", extra={**ids, "reason": str(failure)})
                    return Held(self._breakers.cooldown_seconds, f"resuming its parked responses: {failure}")
                self._state.advance_park(client.client_id, conversation_id, webhook_id)
                if webhook_id == park.last:
                    self._state.unpark(
                        client.client_id, conversation_id, park.last, self._clients.parked_uncounted(client.client_id)
                    )
                    self._clients.forget(client.client_id)
                    self._logger.info("parked conversation delivered: it goes on from the queue", extra=ids)
                    return None
        # The responses log records a response moments after delivery's queue gets it.
        return Held(1, "waiting for the responses log to record its parked responses")

    def _probe_parked(self, probe: ProbeEndpoint | None) -> Decision:
        """A parked endpoint's probe: a signed `test` delivery, once the cool-down allows; while it fails, back in
        the queue (its only message there) until the next one."""
        assert probe is not None
        client = self._clients.get(probe.client_id)
        if (reason := _not_for_a_webhook(client)) is not None:
            return Done(Result.SKIPPED, reason)  # a disabled client, or no URL: nothing to probe
        assert client is not None and client.response_url is not None
        if client.endpoint_state is not EndpointState.PARKED:
            return Done(Result.SKIPPED, "its endpoint is not parked (any more)")
        endpoint = client.client_id
        with self._breakers.slot(endpoint):
            admission = self._breakers.admit(endpoint, client.endpoint_open_until, client.endpoint_since)
            failing = self._failing_for(client)
            self._park_if_failing_long(client, failing)
            if not isinstance(admission, Hold):  # always claimed: its success must close the breaker everywhere
                admission = self._claim_probe(client, {"client_id": endpoint})
            if isinstance(admission, Hold):
                return Held(admission.seconds, "its endpoint's breaker is open")
            if not self._breakers.probing(endpoint):
                return Done(Result.SKIPPED, "its endpoint was switched on meanwhile")
            webhook_id, started = f"probe_{uuid.uuid4().hex}", at(self._clock())
            outcome, failure = self._post(client, webhook_id, probe_body(endpoint))
        self._keep(endpoint, webhook_id, "", "test", 1, Trigger.PROBE, started, outcome)
        if failure is not None:
            return Held(self._breakers.cooldown_seconds, f"probe failed: {failure}")
        return Done(Result.PROBED)

    def _resume_nudged(self, nudge: ResumeParked) -> Decision:
        client = self._clients.get(nudge.client_id)
        if client is None or client.endpoint_state in PARKING:
            return Done(Result.SKIPPED, "its endpoint is parked again: the next recovery resumes it")
        if (blocked := self._resume(client, nudge.conversation_id)) is not None:
            return blocked
        return Done(Result.RESUMED)

    def _claim_probe(self, client: Client, ids: dict[str, str]) -> Admission:
        """The breaker's cool-down is over: one container, the one whose claim lands, POSTs one response (the
        probe: Probe when the claim is ours, Post when another container has closed the breaker)."""
        now = self._clock()
        endpoint = client.client_id
        claim = self._clients.claim_probe(endpoint, at(now), at(now + self._breakers.cooldown_seconds))
        if not claim.ours:
            if claim.open_until is None:  # closed by another container since this one read the record
                self._breakers.reset(endpoint)
                return Post()
            self._breakers.lost_claim(endpoint, claim.open_until)
            return self._breakers.admit(endpoint, claim.open_until, client.endpoint_since)
        self._breakers.claimed(endpoint)
        self._logger.info("breaker open: probing the endpoint with this response", extra=ids)
        self._metrics.add_metric(name=Change.PROBED, unit=MetricUnit.Count, value=1)
        return Probe()

    def _failing_for(self, client: Client) -> float | None:
        """How long the endpoint has been failing, as this container saw it or the client record says."""
        since = self._breakers.failing_since(client.client_id) or (
            client.endpoint_since.timestamp() if client.endpoint_since else None
        )
        return self._clock() - since if since is not None else None

    def _park_if_failing_long(self, client: Client, failing: float | None) -> None:
        if failing is None:
            return
        if failing >= self._settings.endpoint_disable_after_hours * 3600:
            if client.endpoint_state is not EndpointState.DISABLED:
                self._endpoint_parked(client, EndpointState.DISABLED, f"failing for {failing / 3600:.1f} hours")
        elif failing >= self._settings.endpoint_park_after_seconds and client.endpoint_state not in PARKING:
            self._endpoint_parked(client, EndpointState.PARKED, f"failing for {failing / 60:.0f} minutes")

    def _held(self, response: ClientResponse, failing: float | None, seconds: int, ids: dict[str, str]) -> Decision:
        if failing is not None and failing >= self._settings.retry_window_seconds:
            # The schedule's time is spent: the conversation stops as if its attempts were used.
            return self._stop(response, "its endpoint failed for the whole retry window", ids, 0)
        return Held(seconds, "its endpoint's breaker is open")

    def _endpoint_parked(self, client: Client, state: EndpointState, reason: str) -> None:
        if not self._clients.park_endpoint(client.client_id, state, at(self._clock()), reason):
            return  # parked already, or recovered
        change = Change.PARKED if state is EndpointState.PARKED else Change.DISABLED
        if state is EndpointState.PARKED:
            self._queue.probe_later(client.client_id)
        self._logger.warning(
            f"endpoint {state}: its responses leave the queue for the responses log until it is back",
            extra={"client_id": client.client_id, "reason": reason},
        )
        self._metrics.add_metric(name=change, unit=MetricUnit.Count, value=1)
        now = at(self._clock())
        told = EndpointParked if state is EndpointState.PARKED else EndpointDisabled
        self._events.publish(
            told(client_id=client.client_id, at=now, host=host_of(client.response_url), since=now, reason=reason)
        )

    def _breaker_outcome(self, client: Client, succeeded: bool, seconds: float, reason: str) -> None:
        change = self._breakers.outcome(client.client_id, succeeded, seconds)
        if change is None:
            return
        extra = {"client_id": client.client_id, "reason": reason}
        if change is Change.OPENED:
            since = self._breakers.failing_since(client.client_id) or self._clock()
            self._clients.open_endpoint(
                client.client_id, at(since), at(self._breakers.open_until(client.client_id)), reason
            )
            self._logger.warning("endpoint failing: breaker opened, its responses are held without a POST", extra=extra)
            self._events.publish(
                EndpointFailing(
                    client_id=client.client_id,
                    at=at(self._clock()),
                    host=host_of(client.response_url),
                    since=at(since),
                    reason=reason,
                )
            )
        else:
            self._clients.close_endpoint(client.client_id)
            self._logger.info("endpoint answered promptly: breaker closed", extra=extra)
            self._events.publish(
                EndpointRecovered(
                    client_id=client.client_id,
                    at=at(self._clock()),
                    host=host_of(client.response_url),
                    since=client.endpoint_since,
                )
            )
            if client.parked_conversations > 0 or client.endpoint_state in PARKING:
                parked = self._state.parked(client.client_id)
                self._queue.nudge(client.client_id, parked)
                self._logger.info("parked conversations resumed", extra={**extra, "conversations": len(parked)})
        self._metrics.add_metric(name=change, unit=MetricUnit.Count, value=1)

    def _failed(self, response: ClientResponse, failure: DeliveryFailed, ids: dict[str, str], attempt: int) -> Decision:
        if attempt >= self._settings.delivery_max_attempts:
            return self._stop(response, str(failure), ids, attempt)
        delay = retry_delay(attempt, self._settings.delivery_retry_schedule)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        self._logger.warning(
            "delivery failed: will retry",
            extra={**ids, "attempt": attempt, "reason": str(failure), "retry_in_seconds": delay},
        )
        return Retry(delay, str(failure))

    def _stop(self, response: ClientResponse, reason: str, ids: dict[str, str], attempt: int) -> Decision:
        client = self._clients.get(response.client_id)  # cached: before the stop makes it read afresh
        self._state.stop(
            response.client_id,
            response.conversation_id,
            response.webhook_id,
            self._clients.stop_counted(response.client_id),
        )
        self._clients.forget(response.client_id)
        self._logger.warning(
            "last attempt failed: the conversation stops here and goes to the dead-letter queue",
            extra={**ids, "attempt": attempt, "reason": reason},
        )
        self._events.publish(
            ConversationStopped(
                client_id=response.client_id,
                at=at(self._clock()),
                host=host_of(client.response_url if client else None),
                reason=reason,
                conversation_id=response.conversation_id,
                webhook_id=response.webhook_id,
            )
        )
        return StopConversation(self._settings.delivery_stop_hold_seconds, reason)


CLIENT_DISABLED = "client disabled"
URL_OFF = "response URL switched off after 410 Gone"
SKIPS_KEPT = (CLIENT_DISABLED, URL_OFF)
"""The reasons a skipped response is kept in the attempt log for POST /client/recover: a client that has no response
URL chose not to have a webhook, and reads its responses otherwise."""


def _not_for_a_webhook(client: Client | None) -> str | None:
    """Why a response is not POSTed anywhere, or None when it is."""
    if client is None:
        return "unknown client"
    if not client.enabled:
        return CLIENT_DISABLED
    if client.response_url is None:
        return "no response URL"
    if client.response_url_off:
        return URL_OFF
    return None


def _release(queue: Sequence[QueuedResponse], reason: str) -> dict[str, Decision]:
    return {queued.message_id: Release(reason) for queued in queue}


def _ids(response: ClientResponse) -> dict[str, str]:
    return {
        "client_id": response.client_id,
        "conversation_id": response.conversation_id,
        "webhook_id": response.webhook_id,
    }
