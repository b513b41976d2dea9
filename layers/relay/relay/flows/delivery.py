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
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from relay.adapters.outbound import CONCURRENT_REQUESTS
from relay.adapters.webhook import DeliveryFailed, ResponseUrlGone, WebhookSender
from relay.attempts import Attempt, Outcome, Trigger
from relay.deliveries import (
    FAILURES,
    DeadLetter,
    Decision,
    Done,
    Held,
    QueuedResponse,
    Release,
    Result,
    Retry,
    StopConversation,
)
from relay.endpoints import Admission, Breakers, Change, Hold, Post, Probe, ProbeClaim, at
from relay.models import Client, ClientResponse
from relay.settings import DeliverySettings, retry_delay
from relay.stores.clients import TransactItem
from relay.stores.delivery_state import Stop

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
    def stop_counted(self, client_id: str) -> TransactItem: ...
    def stop_uncounted(self, client_id: str) -> TransactItem: ...


class State(Protocol):
    """What delivery needs of the delivery state store (relay.stores.delivery_state.DeliveryState)."""

    def count_failed_attempt(self, webhook_id: str) -> int: ...
    def failed_attempts(self, webhook_id: str) -> int: ...
    def stop(self, client_id: str, conversation_id: str, webhook_id: str, counted: TransactItem) -> None: ...
    def stop_of(self, client_id: str, conversation_id: str) -> Stop | None: ...
    def mark_dead_lettered(self, client_id: str, conversation_id: str) -> None: ...
    def resume(self, client_id: str, conversation_id: str, webhook_id: str, uncounted: TransactItem) -> None: ...


class AttemptLog(Protocol):
    """Where attempts are recorded (relay.stores.attempts.AttemptLog)."""

    def write(self, records: Sequence[tuple[str, Attempt]]) -> None: ...


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
        logger: Any,
        metrics: Any,
        clock: Callable[[], float] = time.time,
        *,
        attempts: AttemptLog,
    ) -> None:
        self._settings = settings
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
        self._records: list[tuple[str, Attempt]] = []
        self._records_lock = threading.Lock()

    def run(
        self,
        responses: Sequence[QueuedResponse],
        remaining_ms: Callable[[], int],
        apply: Callable[[Mapping[str, Decision]], None],
    ) -> dict[str, Decision]:
        """Deliver a batch; then record its attempts in the attempt log, in one write."""
        try:
            return self._run(responses, remaining_ms, apply)
        finally:
            with self._records_lock:
                records, self._records = self._records, []
            if records:
                self._attempts.write(records)

    def _run(
        self,
        responses: Sequence[QueuedResponse],
        remaining_ms: Callable[[], int],
        apply: Callable[[Mapping[str, Decision]], None],
    ) -> dict[str, Decision]:
        """Deliver a batch: its conversations in parallel, each in order. `apply` carries out each conversation's
        decisions as soon as its part of the batch is done, so its next response is not held back by a slower
        conversation of the same batch (another client's receiver, say)."""
        groups: dict[str, list[QueuedResponse]] = {}
        for queued in responses:
            groups.setdefault(queued.conversation, []).append(queued)

        def conversation(queue: list[QueuedResponse]) -> dict[str, Decision]:
            turn = self._conversation(queue, remaining_ms)
            apply(turn.decisions)
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

    # ── one conversation, in order ──

    def _conversation(self, queue: list[QueuedResponse], remaining_ms: Callable[[], int]) -> _Turn:
        decisions: dict[str, Decision] = {}
        stop_checked = False
        for index, queued in enumerate(queue):
            if remaining_ms() < (self._settings.webhook_timeout_seconds + ATTEMPT_RESERVE_SECONDS) * 1000:
                decisions.update(_release(queue[index:], "not enough time left in this invocation"))
                break
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
        if (reason := _not_for_a_webhook(client)) is not None:
            self._logger.info("not delivered to a webhook", extra={**ids, "reason": reason})
            return Done(Result.SKIPPED, reason)
        assert client is not None and client.response_url is not None  # as _not_for_a_webhook found
        endpoint = client.client_id  # a client has one response URL
        with self._breakers.slot(endpoint):
            admission = self._breakers.admit(endpoint, client.endpoint_open_until, client.endpoint_since)
            if isinstance(admission, Probe):
                admission = self._claim_probe(client, ids)
            if isinstance(admission, Hold):
                return self._held(client, response, admission.seconds, ids)
            trigger = Trigger.PROBE if isinstance(admission, Probe) else queued.trigger
            started = self._clock()
            now = datetime.fromtimestamp(started, UTC)
            try:
                outcome = self._webhooks.post(
                    str(client.response_url), client.signing_secrets(now), response.webhook_id, queued.body
                )
            except ResponseUrlGone as gone:
                self._record(response, self._attempt_number(queued, response), trigger, now, gone.outcome)
                self._clients.switch_off_url(client.client_id)
                self._logger.warning(
                    "receiver answered 410 Gone: response URL switched off until an operator sets it again",
                    extra={**ids, "response_url_host": client.response_url.host},
                )
                return Done(Result.GONE, str(gone))
            except DeliveryFailed as failure:
                self._breaker_outcome(client, False, self._clock() - started, str(failure))
                attempt = self._state.count_failed_attempt(response.webhook_id)
                self._record(response, attempt, trigger, now, failure.outcome)
                return self._failed(response, failure, ids, attempt)
        self._record(response, self._attempt_number(queued, response), trigger, now, outcome)
        seconds = self._clock() - started
        self._breaker_outcome(client, True, seconds, f"receiver took {seconds:.1f} s to answer")
        self._logger.info("delivered", extra=ids)
        return Done(Result.DELIVERED)

    def _attempt_number(self, queued: QueuedResponse, response: ClientResponse) -> int:
        """The attempt a POST that did not fail (or got 410) was: only a response received before may have
        failed attempts counted, so only then is the counter read."""
        return 1 + (self._state.failed_attempts(response.webhook_id) if queued.receive_count > 1 else 0)

    def _record(self, response: ClientResponse, attempt: int, trigger: Trigger, at: datetime, outcome: Outcome) -> None:
        """Keep the attempt for the attempt log, written when the invocation ends."""
        record = Attempt.of(
            outcome,
            webhook_id=response.webhook_id,
            conversation_id=response.conversation_id,
            type=response.type,
            attempt=attempt,
            trigger=trigger,
            at=at,
        )
        with self._records_lock:
            self._records.append((response.client_id, record))

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

    def _held(self, client: Client, response: ClientResponse, seconds: int, ids: dict[str, str]) -> Decision:
        since = self._breakers.failing_since(client.client_id) or (
            client.endpoint_since.timestamp() if client.endpoint_since else None
        )
        if since is not None and self._clock() - since >= self._settings.retry_window_seconds:
            # The schedule's time is spent: the conversation stops as if its attempts were used.
            return self._stop(response, "its endpoint failed for the whole retry window", ids, 0)
        return Held(seconds, "its endpoint's breaker is open")

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
        else:
            self._clients.close_endpoint(client.client_id)
            self._logger.info("endpoint answered promptly: breaker closed", extra=extra)
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
        return StopConversation(self._settings.delivery_stop_hold_seconds, reason)


def _not_for_a_webhook(client: Client | None) -> str | None:
    """Why a response is not POSTed anywhere, or None when it is."""
    if client is None:
        return "unknown client"
    if not client.enabled:
        return "client disabled"
    if client.response_url is None:
        return "no response URL"
    if client.response_url_off:
        return "response URL switched off after 410 Gone"
    return None


def _release(queue: Sequence[QueuedResponse], reason: str) -> dict[str, Decision]:
    return {queued.message_id: Release(reason) for queued in queue}


def _ids(response: ClientResponse) -> dict[str, str]:
    return {
        "client_id": response.client_id,
        "conversation_id": response.conversation_id,
        "webhook_id": response.webhook_id,
    }
