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
import email.utils
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from relay import http, webhooks
from relay.clients import ClientStore
from relay.models import Client, ClientResponse
from relay.settings import MAX_RETRY_DELAY_SECONDS, DeliverySettings

STATE_TTL_SECONDS = 15 * 24 * 3600
"""An attempt counter outlives any message it counts for: SQS keeps a message 14 days at most."""

STOP_HOLD_MARGIN_SECONDS = 5


class DeliveryFailed(Exception):
    """The receiver did not take the response; it is tried again after the schedule's next delay."""

    def __init__(self, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class ResponseUrlGone(Exception):
    """The receiver answered 410 Gone: nothing more is POSTed to that URL until an operator sets it again."""


class NotAttempted(Exception):
    """Left for the next invocation: its conversation is waiting for an earlier response, or time ran out."""


class Result(Enum):
    DELIVERED = "Delivered"
    SKIPPED = "DeliverySkipped"
    RETRY = "DeliveryFailed"
    DEAD_LETTERED = "DeadLettered"
    GONE = "ResponseUrlGone"
    NOT_ATTEMPTED = "NotAttempted"


def deliver(url: str, signing_secrets: Sequence[str], webhook_id: str, body: str, timeout_seconds: float) -> None:
    """POST one response with Standard Webhooks headers; any 2xx is success.

    `body` is sent as published, byte for byte, so what is signed is what consumers of the topic see.
    """
    headers = webhooks.headers(signing_secrets, webhook_id, int(time.time()), body)
    try:
        status, answer_headers = http.exchange(url, body, headers, timeout_seconds)
    except http.PostFailed as failure:
        raise DeliveryFailed(f"receiver {failure}") from failure
    if status == 410:
        raise ResponseUrlGone("receiver answered 410 Gone")
    if not 200 <= status < 300:
        wait = retry_after(answer_headers.get("retry-after")) if status in (429, 503) else None
        raise DeliveryFailed(f"receiver answered HTTP {status}", retry_after=wait)


def retry_after(value: str | None, now: float | None = None) -> int | None:
    """Seconds a `Retry-After` header asks for (delay-seconds or an HTTP date), capped at SQS's limit."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = int(when.timestamp() - (time.time() if now is None else now) + 0.999)
    return max(0, min(seconds, MAX_RETRY_DELAY_SECONDS))


def retry_delay(attempt: int, schedule: Sequence[int]) -> int:
    """Seconds until the next attempt after the response's `attempt`-th real attempt failed."""
    return schedule[min(attempt, len(schedule)) - 1]


class DeliveryQueue:
    """The few queue operations Lambda's event source mapping leaves to the function."""

    def __init__(self, sqs: Any, queue_url: str, dead_letter_queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._dead_letters = dead_letter_queue_url

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        self._sqs.change_message_visibility(QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds)

    def release(self, receipt_handles: Sequence[str]) -> None:
        """Make untried messages visible again; their group stays blocked until the failed one before them is done."""
        for start in range(0, len(receipt_handles), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(receipt_handles[start : start + 10])
            ]
            self._sqs.change_message_visibility_batch(QueueUrl=self._url, Entries=entries)

    def dead_letter(self, records: Sequence[SQSRecord]) -> None:
        """Copy messages to the dead-letter queue in order, in their message group; the caller then deletes them."""
        for start in range(0, len(records), 10):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": record.body,
                    "MessageGroupId": record.attributes.message_group_id,
                    "MessageDeduplicationId": record.message_id,
                    "MessageAttributes": {
                        name: {"DataType": attribute.data_type, "StringValue": attribute.string_value}
                        for name, attribute in record.message_attributes.items()
                        if attribute.string_value is not None
                    },
                }
                for i, record in enumerate(records[start : start + 10])
            ]
            answer = self._sqs.send_message_batch(QueueUrl=self._dead_letters, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"dead-letter queue refused messages: {answer['Failed']}")


@dataclass(frozen=True)
class Stop:
    """Where a conversation's delivery stopped, and whether its messages have been dead-lettered yet."""

    webhook_id: str
    dead_lettered: bool


class DeliveryState:
    """Attempt counters (one item per response, written only when an attempt fails) and conversation stops."""

    def __init__(self, dynamodb: Any, table_name: str, clients_table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._clients = clients_table

    def failed_attempt(self, webhook_id: str) -> int:
        """Count one more failed attempt of the response; returns how many it has had."""
        answer = self._dynamodb.update_item(
            TableName=self._table,
            Key=_attempts_key(webhook_id),
            UpdateExpression="ADD attempts :one SET expiresAt = :expires",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":expires": {"N": str(int(time.time()) + STATE_TTL_SECONDS)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["attempts"]["N"])

    def stop(self, client_id: str, conversation_id: str, webhook_id: str) -> None:
        """Stop the conversation at this response; counted on the client record so every container looks it up."""
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **_stop_key(client_id, conversation_id),
                                "webhookId": {"S": webhook_id},
                                "deadLettered": {"BOOL": False},
                            },
                            "ConditionExpression": "attribute_not_exists(id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._clients,
                            "Key": {"clientId": {"S": client_id}},
                            "UpdateExpression": "ADD stoppedConversations :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ]
            )
        except self._dynamodb.exceptions.TransactionCanceledException as error:
            if not _condition_failed(error):
                raise  # stopped already (an earlier try got this far): nothing to add

    def stop_of(self, client_id: str, conversation_id: str) -> Stop | None:
        item = self._dynamodb.get_item(
            TableName=self._table, Key=_stop_key(client_id, conversation_id), ConsistentRead=True
        ).get("Item")
        return Stop(item["webhookId"]["S"], item["deadLettered"]["BOOL"]) if item else None

    def dead_lettered(self, client_id: str, conversation_id: str) -> None:
        self._dynamodb.update_item(
            TableName=self._table,
            Key=_stop_key(client_id, conversation_id),
            UpdateExpression="SET deadLettered = :yes",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    def resume(self, client_id: str, conversation_id: str, webhook_id: str) -> None:
        """The response the conversation stopped at is back (a redrive): go on, with a fresh schedule for it."""
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": _stop_key(client_id, conversation_id),
                            "ConditionExpression": "attribute_exists(id)",
                        }
                    },
                    {"Delete": {"TableName": self._table, "Key": _attempts_key(webhook_id)}},
                    {
                        "Update": {
                            "TableName": self._clients,
                            "Key": {"clientId": {"S": client_id}},
                            "UpdateExpression": "ADD stoppedConversations :minus",
                            "ConditionExpression": "stoppedConversations > :zero",
                            "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":zero": {"N": "0"}},
                        }
                    },
                ]
            )
        except self._dynamodb.exceptions.TransactionCanceledException as error:
            if not _condition_failed(error):
                raise


def _attempts_key(webhook_id: str) -> dict[str, Any]:
    return {"id": {"S": f"attempts#{webhook_id}"}}


def _stop_key(client_id: str, conversation_id: str) -> dict[str, Any]:
    # A client id holds no '#', so the key names one conversation of one client.
    return {"id": {"S": f"stop#{client_id}#{conversation_id}"}}


def _condition_failed(error: Any) -> bool:
    reasons = error.response.get("CancellationReasons") or []
    return any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons)


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
        self._conversations = ThreadPoolExecutor(max_workers=http.CONCURRENT_REQUESTS, thread_name_prefix="delivery")
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
