"""Delivery of bot responses to clients' response URLs: signed, in order per conversation, retried, never with gaps.

A batch's conversations (SQS message groups) are delivered in parallel, each strictly in order; a failing
conversation holds up only itself. A response's attempt number is the number of times it was actually POSTed:
a failed attempt costs one DynamoDB write (its counter), a delivery costs no AWS call at all.

When a response has used every attempt of the schedule, its conversation stops there: that response and every
later one of the conversation go to the dead-letter queue in order, so a redrive replays the conversation whole,
and nothing later is delivered before it. The stop is recorded (a stop item, and a count on the client record
that tells the other containers to look it up); it ends when the response it stopped at comes back from the
dead-letter queue.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from relay.adapters import outbound
from relay.adapters.delivery_queue import DeliveryQueue
from relay.adapters.webhook import DeliveryFailed, ResponseUrlGone, deliver
from relay.models import Client, ClientResponse
from relay.settings import DeliverySettings
from relay.stores.clients import ClientStore
from relay.stores.delivery_state import DeliveryState

STOP_HOLD_MARGIN_SECONDS = 5


class NotAttempted(Exception):
    """Left for the next invocation: its conversation is waiting for an earlier response, or time ran out."""


class Result(Enum):
    DELIVERED = "Delivered"
    SKIPPED = "DeliverySkipped"
    RETRY = "DeliveryFailed"
    DEAD_LETTERED = "DeadLettered"
    GONE = "ResponseUrlGone"
    NOT_ATTEMPTED = "NotAttempted"


def retry_delay(attempt: int, schedule: Sequence[int]) -> int:
    """Seconds until the next attempt after the response's `attempt`-th real attempt failed."""
    return schedule[min(attempt, len(schedule)) - 1]


@dataclass(frozen=True)
class Outcome:
    result: Result
    error: Exception | None = None


class Batch:
    """What became of each message of a batch; its `outcome_of` is the record handler of the batch processor."""

    def __init__(self, outcomes: dict[str, Outcome]) -> None:
        self.outcomes = outcomes

    def outcome_of(self, record: SQSRecord) -> None:
        """Raise for a message to be reported failed (it stays in the queue), return for one that is done."""
        if (error := self.outcomes[record.message_id].error) is not None:
            raise error

    def count(self, result: Result) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome.result is result)


class Delivery:
    """The delivery flow: a batch from the delivery queue to the clients' response URLs."""

    def __init__(
        self,
        settings: DeliverySettings,
        clients: ClientStore,
        queue: DeliveryQueue,
        state: DeliveryState,
        logger: Any,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._queue = queue
        self._state = state
        self._logger = logger
        self._conversations = ThreadPoolExecutor(
            max_workers=outbound.CONCURRENT_REQUESTS, thread_name_prefix="delivery"
        )
        # Long enough for every container's cached client record to show a new stop before anything moves.
        self.stop_hold_seconds = int(settings.cache_ttl_seconds) + STOP_HOLD_MARGIN_SECONDS

    def run(self, records: Iterable[SQSRecord], remaining_ms: Callable[[], int]) -> Batch:
        """Deliver a batch: its conversations in parallel, each in order; untried messages go back at once."""
        groups: dict[str, list[SQSRecord]] = {}
        for record in records:
            groups.setdefault(record.attributes.message_group_id or record.message_id, []).append(record)
        outcomes: dict[str, Outcome] = {}
        if len(groups) == 1:  # one conversation: on this thread, sparing a hand-over to another
            (group,) = groups.values()
            outcomes.update(self._conversation(group, remaining_ms))
        else:
            # Each conversation's thread runs in a copy of the invocation's context (context variables such as a
            # tracer's segment follow the work into the thread).
            tasks = [(contextvars.copy_context(), group) for group in groups.values()]
            for results in self._conversations.map(
                lambda task: task[0].run(self._conversation, task[1], remaining_ms), tasks
            ):
                outcomes.update(results)
        self._queue.release(
            [
                record.receipt_handle
                for group in groups.values()
                for record in group
                if outcomes[record.message_id].result is Result.NOT_ATTEMPTED
            ]
        )
        return Batch(outcomes)

    # ── one conversation, in order ──

    def _conversation(self, records: list[SQSRecord], remaining_ms: Callable[[], int]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        stop_checked = False
        for index, record in enumerate(records):
            if remaining_ms() < (self._settings.webhook_timeout_seconds + 2) * 1000:
                outcome = Outcome(Result.NOT_ATTEMPTED, NotAttempted("not enough time left in this invocation"))
            else:
                try:
                    response = ClientResponse.model_validate_json(record.body)
                except ValidationError:
                    # Waiting will not fix it; it does not stop its conversation (its ids cannot be read).
                    self._logger.error("malformed response: on to the dead-letter queue", extra=_ids(record))
                    self._queue.dead_letter([record])
                    outcome = Outcome(Result.DEAD_LETTERED)
                else:
                    client = self._clients.get(response.client_id)
                    if not stop_checked and client is not None and client.stopped_conversations > 0:
                        stop_checked = True
                        if self._stopped(client, response, records[index:]):
                            outcomes.update({r.message_id: Outcome(Result.DEAD_LETTERED) for r in records[index:]})
                            break
                    outcome = self._deliver(client, response, record)
            outcomes[record.message_id] = outcome
            if outcome.error is not None:
                # The rest of the conversation waits behind it, untried.
                waiting = Outcome(Result.NOT_ATTEMPTED, NotAttempted("an earlier response failed"))
                outcomes.update({r.message_id: waiting for r in records[index + 1 :]})
                break
        return outcomes

    def _stopped(self, client: Client, response: ClientResponse, records: list[SQSRecord]) -> bool:
        """Whether the conversation is stopped; if so, `records` (the rest of it in this batch) are dead-lettered."""
        stop = self._state.stop_of(client.client_id, response.conversation_id)
        if stop is None:
            return False
        ids = _response_ids(response)
        if stop.webhook_id == response.webhook_id and stop.dead_lettered:
            self._logger.info("redriven: the conversation goes on from here", extra=ids)
            self._state.resume(client.client_id, response.conversation_id, response.webhook_id)
            self._clients.forget(client.client_id)
            return False
        self._queue.dead_letter(records)
        if stop.webhook_id == response.webhook_id:
            self._state.dead_lettered(client.client_id, response.conversation_id)
        self._logger.warning(
            "conversation stopped at an undeliverable response: on to the dead-letter queue in order",
            extra={**ids, "stopped_at": stop.webhook_id, "dead_lettered": len(records)},
        )
        return True

    def _deliver(self, client: Client | None, response: ClientResponse, record: SQSRecord) -> Outcome:
        ids = _response_ids(response)
        if client is None or not client.enabled or client.response_url is None or client.response_url_off:
            reason = (
                "unknown client"
                if client is None
                else "client disabled"
                if not client.enabled
                else "no response URL"
                if client.response_url is None
                else "response URL switched off after 410 Gone"
            )
            self._logger.info("not delivered to a webhook", extra={**ids, "reason": reason})
            return Outcome(Result.SKIPPED)
        try:
            deliver(
                str(client.response_url),
                client.signing_secrets(datetime.now(UTC)),
                response.webhook_id,
                record.body,
                self._settings.webhook_timeout_seconds,
            )
        except ResponseUrlGone:
            self._clients.switch_off_url(client.client_id)
            self._logger.warning(
                "receiver answered 410 Gone: response URL switched off until an operator sets it again",
                extra={**ids, "response_url_host": client.response_url.host},
            )
            return Outcome(Result.GONE)
        except DeliveryFailed as failure:
            return self._failed(response, record, failure, ids)
        self._logger.info("delivered", extra=ids)
        return Outcome(Result.DELIVERED)

    def _failed(
        self, response: ClientResponse, record: SQSRecord, failure: DeliveryFailed, ids: dict[str, str]
    ) -> Outcome:
        attempt = self._state.failed_attempt(response.webhook_id)
        if attempt >= self._settings.delivery_max_attempts:
            self._state.stop(response.client_id, response.conversation_id, response.webhook_id)
            self._clients.forget(response.client_id)
            self._logger.warning(
                "last attempt failed: the conversation stops here and goes to the dead-letter queue",
                extra={**ids, "attempt": attempt, "reason": str(failure)},
            )
            self._queue.retry_after(record.receipt_handle, self.stop_hold_seconds)
            return Outcome(Result.RETRY, failure)
        delay = retry_delay(attempt, self._settings.delivery_retry_schedule)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        self._logger.warning(
            "delivery failed: will retry",
            extra={**ids, "attempt": attempt, "reason": str(failure), "retry_in_seconds": delay},
        )
        self._queue.retry_after(record.receipt_handle, delay)
        return Outcome(Result.RETRY, failure)


def _response_ids(response: ClientResponse) -> dict[str, str]:
    return {
        "client_id": response.client_id,
        "conversation_id": response.conversation_id,
        "webhook_id": response.webhook_id,
    }


def _ids(record: SQSRecord) -> dict[str, str]:
    return {"sqs_message_id": record.message_id, "message_group_id": record.attributes.message_group_id or ""}
