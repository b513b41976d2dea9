"""In-memory stores, a bot and a publisher for the flows' unit tests, and a clock that time only moves on when
a flow sleeps: no moto, no network, no waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import STATUS_CONSTANTS, BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from relay.attempts import Attempt, AttemptsPage, DeliveriesQuery, Skip
from relay.errors import RelayError, Unauthorized
from relay.models import ClientResponse, Conversation, InboundMessage, scoped
from relay.operations import OperationalEvent
from relay.rate_limits import MICROSECONDS, RateLimit, Verdict
from relay.settings import InboundSettings
from relay.stores.clients import Credentials, hash_token
from relay.stores.responses_log import Recorded

EPOCH = 1_800_000_000.0
"""The wall clock when the monotonic clock reads 0."""


@dataclass
class Clock:
    """Monotonic and wall time that move only when a flow sleeps; what is scheduled happens on the way."""

    now: float = 0.0
    _events: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._events.append((when, len(self._events), action))
        self._events.sort(key=lambda event: event[:2])

    def sleep(self, seconds: float) -> None:
        end = self.now + seconds
        while self._events and self._events[0][0] <= end:
            when, _, action = self._events.pop(0)
            self.now = max(self.now, when)
            action()
        self.now = end


class Context:
    """A Lambda context whose remaining time runs on the clock."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._end = clock.now + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._end - self._clock.now) * 1000)


class MemoryLog:
    """The responses log: positions per conversation, stamped by the wall clock when recorded."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.entries: dict[str, list[Recorded]] = {}

    def record(self, position: int, response: ClientResponse, body: str, recorded_at: float | None = None) -> bool:
        entries = self.entries.setdefault(scoped(response.client_id, response.conversation_id), [])
        if any(entry.position == position for entry in entries):
            return False
        stamp = self._clock.wall() if recorded_at is None else recorded_at
        entries.append(Recorded(position, stamp, body))
        entries.sort(key=lambda entry: entry.position)
        return True

    def after(self, client_id: str, conversation_id: str, position: int, limit: int) -> list[Recorded]:
        entries = self.entries.get(scoped(client_id, conversation_id), [])
        return [entry for entry in entries if entry.position > position][:limit]

    def last_position(self, client_id: str, conversation_id: str) -> int:
        entries = self.entries.get(scoped(client_id, conversation_id), [])
        return entries[-1].position if entries else 0


class MemoryConversations:
    def __init__(self) -> None:
        self.recorded: dict[str, Conversation] = {}

    def record(self, conversation: Conversation) -> None:
        self.recorded[conversation.bot_conversation_id] = conversation

    def find(self, bot_conversation_id: str) -> Conversation | None:
        return self.recorded.get(bot_conversation_id)


class MemoryClients:
    """Clients by token: `acme.token` is acme's; `rates` holds those with a rate of their own."""

    def __init__(self, *client_ids: str) -> None:
        self._by_token = {f"{client_id}.token": client_id for client_id in client_ids}
        self.rates: dict[str, int] = {}

    def rate_of(self, client_id: str) -> int | None:
        return self.rates.get(client_id)

    def authenticate(self, token: str) -> Credentials:
        if token not in self._by_token:
            raise Unauthorized("invalid client token")
        return Credentials(client_id=self._by_token[token], token_hash=hash_token(token))

    def enabled(self, client_id: str) -> Credentials:
        if client_id not in self._by_token.values():
            raise Unauthorized("invalid conversation token: its client no longer exists")
        return Credentials(client_id=client_id, token_hash=hash_token(f"{client_id}.token"))


class MemoryBuckets:
    """The rate limits table on the clock's wall time, each client's theoretical arrival time (relay.rate_limits),
    seen by one container: it knows a client is over without a write once it has seen it over."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.tats: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        self.writes = 0

    def over(self, client_id: str, limit: RateLimit) -> Verdict | None:
        seen, now = self.seen.get(client_id), self._now()
        return None if seen is None or limit.admits(seen, now) else limit.refused(seen, now)

    def take(self, client_id: str, limit: RateLimit) -> Verdict:
        tat, now = self.tats.get(client_id), self._now()
        self.writes += 1
        if tat is not None and not limit.admits(tat, now):
            self.seen[client_id] = tat
            return limit.refused(tat, now)
        self.tats[client_id] = self.seen[client_id] = max(tat or now, now) + limit.interval
        return limit.admitted(self.tats[client_id], now)

    def spend(self, client_id: str, limit: RateLimit) -> None:
        """Another container takes the client's whole burst."""
        self.tats[client_id] = self._now() + limit.burst * limit.interval

    def _now(self) -> int:
        return int(self._clock.wall() * MICROSECONDS)


class MemoryRepeats(BasePersistenceLayer):
    """The idempotency table, with DynamoDB's conditions: a record is taken unless it is expired, or an
    in-progress mark whose time ran out."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, DataRecord] = {}

    def _get_record(self, idempotency_key: str) -> DataRecord:
        try:
            return self.records[idempotency_key]
        except KeyError:
            raise IdempotencyItemNotFoundError from None

    def _put_record(self, data_record: DataRecord) -> None:
        old = self.records.get(data_record.idempotency_key)
        now_ms = time.time() * 1000
        ran_out = old is not None and (old.in_progress_expiry_timestamp or now_ms) < now_ms
        if old is not None and not old.is_expired and not ran_out:
            self._validate_payload(data_payload=data_record, stored_data_record=old)
            raise IdempotencyItemAlreadyExistsError(old_data_record=old)
        self.records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        self.records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        self.records.pop(data_record.idempotency_key, None)

    def in_progress(self) -> int:
        return sum(record.status == STATUS_CONSTANTS["INPROGRESS"] for record in self.records.values())


class MemoryBot:
    """The bot as BotClient shows it to the flow: it takes each message, or raises what it is told to."""

    def __init__(self) -> None:
        self.forwarded: list[InboundMessage] = []
        self.refusals: list[RelayError] = []

    def forward(self, message: InboundMessage) -> None:
        if self.refusals:
            raise self.refusals.pop(0)
        self.forwarded.append(message)


class MemoryPublisher:
    def __init__(self) -> None:
        self.published: list[ClientResponse] = []

    def publish(self, response: ClientResponse) -> None:
        self.published.append(response)


def client_response(conversation: str, text: str, client_id: str = "acme", **fields: Any) -> ClientResponse:
    return ClientResponse(
        type="text",
        payload={"text": text},
        conversation_id=conversation,
        botpress_message_id=f"bp-{conversation}-{text[:50]}",
        client_id=client_id,
        user_id="alice",
        **fields,
    )


def texts(page: Any) -> list[str]:
    return [response["payload"]["text"] for response in page.responses]


class MemoryNudges:
    """The stream queue: each nudge's (client, conversation, deduplication id)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, client_id: str, conversation_id: str, deduplication_id: str) -> None:
        self.sent.append((client_id, conversation_id, deduplication_id))


class MemoryAttemptLog:
    """The attempt log: (client id, attempt or skip) records; pages without a cursor (the real one:
    tests/integration)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, Attempt | Skip]] = []

    def write(self, records: Sequence[tuple[str, Attempt | Skip]]) -> None:
        self.records += records

    def _of(self, client_id: str, outcome: str | None = None) -> list[Attempt]:
        return sorted(
            (
                a
                for c, a in self.records
                if c == client_id
                and isinstance(a, Attempt)
                and (outcome is None or a.delivered == (outcome == "delivered"))
            ),
            key=lambda a: a.at,
        )

    def undelivered(self, client_id: str, since: datetime, until: datetime) -> list[tuple[str, str]]:
        failed = [a for a in self._of(client_id, "failed") if since <= a.at <= until]
        skipped = [s for c, s in self.records if c == client_id and isinstance(s, Skip) and since <= s.at <= until]
        return [(r.conversation_id, r.webhook_id) for r in [*failed, *skipped]]

    def delivered(self, client_id: str, since: datetime, conversation_ids: Sequence[str]) -> set[str]:
        return {
            a.webhook_id
            for a in self._of(client_id, "delivered")
            if a.at >= since and a.conversation_id in conversation_ids
        }

    def page(self, client_id: str, query: DeliveriesQuery) -> AttemptsPage:
        found = [
            a
            for a in reversed(self._of(client_id, query.status))
            if (query.conversation_id is None or a.conversation_id == query.conversation_id)
            and (query.webhook_id is None or a.webhook_id == query.webhook_id)
            and (query.since is None or a.at >= query.since)
            and (query.until is None or a.at <= query.until)
        ]
        return AttemptsPage(attempts=found[: query.limit], cursor=None)

    def latest(self, client_id: str, outcome: str) -> Attempt | None:
        found = self._of(client_id, outcome)
        return found[-1] if found else None

    def earliest(self, client_id: str, outcome: str, since: datetime | None) -> Attempt | None:
        return next((a for a in self._of(client_id, outcome) if since is None or a.at >= since), None)

    def count(self, client_id: str, outcome: str, since: datetime) -> int:
        return sum(1 for a in self._of(client_id, outcome) if a.at >= since)


def attempt(at: float, *, status: int | None = 204, failure: str | None = None, **fields: Any) -> Attempt:
    """An attempt record at `at` (wall-clock seconds): delivered unless given a failure."""
    return Attempt.model_validate(
        {
            "webhook_id": "msg_1",
            "conversation_id": "c-1",
            "type": "text",
            "attempt": 1,
            "trigger": "schedule",
            "at": datetime.fromtimestamp(at, UTC),
            "status": status,
            "failure": failure,
            "duration_ms": 12,
            "body": "",
            **fields,
        }
    )


class MemoryEvents:
    """The operations topic: each operational event published."""

    def __init__(self) -> None:
        self.published: list[OperationalEvent] = []

    def publish(self, event: OperationalEvent) -> None:
        self.published.append(event)


SETTINGS = InboundSettings(
    clients_table="clients",
    conversations_table="conversations",
    idempotency_table="idempotency",
    bot_webhook_url="https://bot.example/webhook",  # type: ignore[arg-type]
    bot_token_secret="bot-token",
    responses_table="responses",
    attempts_table="attempts",
    delivery_state_table="delivery-state",
    delivery_queue_url="delivery-queue",
    operations_topic_arn="operations",
    watermark_key_secret="watermark-key",
    conversation_token_key_secret="conversation-token-key",
    stream_url="wss://stream.example/live",
    rate_limits_table="rate-limits",
)
"""The client API's settings in the flows' unit tests (names, not resources: the stores are in memory)."""
