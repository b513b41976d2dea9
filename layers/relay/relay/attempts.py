"""Delivery attempts: what each POST to a client's response URL did, as the attempt log keeps it (one record per
attempt, relay.stores.attempts) and GET /deliveries shows it to the client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, ConfigDict, Field, StringConstraints

from relay.models import ID_MAX_LENGTH, CamelModel, Id

BODY_EXCERPT_BYTES = 1024
"""How much of the receiver's answer an attempt record keeps: its first 1 KB."""

PAGE_MAX_ATTEMPTS = 100
"""The most attempts one GET /deliveries answer carries (`limit`'s maximum and default)."""

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""Before any attempt: the lower bound of a window without one."""

LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""After any attempt: the upper bound of a window without one."""


RFC_3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d")


def _written(value: object) -> object:
    """Only a time written as RFC 3339 does: pydantic would take a number of seconds too, which the API's
    description does not offer."""
    if (isinstance(value, str) and RFC_3339.match(value)) or isinstance(value, datetime):
        return value
    raise ValueError("must be a time in RFC 3339, such as 2026-12-02T18:00:00Z")


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # a time at the calendar's very edge, whose offset takes it past it
        raise ValueError("the time is out of range") from None


UtcTime = Annotated[AwareDatetime, BeforeValidator(_written), AfterValidator(_in_utc)]
"""A time given in RFC 3339, with its offset; in UTC."""

TEST_CONVERSATION = "relay-test"
"""The conversation and user of a test delivery (POST /client/test): no conversation of the client's own."""


class Trigger(StrEnum):
    """What made the relay POST."""

    SCHEDULE = "schedule"
    """The delivery queue: a response's first attempt, or a retry of the schedule."""
    PROBE = "probe"
    """The one POST that tests an endpoint whose breaker is open, once its cool-down is over."""
    RECOVER = "recover"
    """A response delivered again by POST /client/recover (or an operator's replay)."""
    TEST = "test"
    """POST /client/test."""


class Failure(StrEnum):
    """Why an attempt failed."""

    TIMEOUT = "timeout"
    """No answer within the webhook timeout."""
    REFUSED = "refused"
    """The connection was refused or dropped before an answer."""
    TLS = "tls"
    """The TLS handshake failed (certificate, protocol)."""
    DNS = "dns"
    """The response URL's host name does not resolve."""
    TOO_LARGE = "too-large"
    """The receiver answered 413: the response is larger than it takes."""
    HTTP = "http"
    """Any other answer that is not a 2xx."""


@dataclass(frozen=True)
class Outcome:
    """What one POST did, as the webhook adapter saw it (relay.adapters.webhook)."""

    status: int | None
    """The answer's HTTP status; None when there was no answer."""
    failure: Failure | None
    """None: delivered (a 2xx)."""
    body: str
    """The answer's first BODY_EXCERPT_BYTES, as text."""
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.failure is None


def excerpt(body: bytes) -> str:
    """The first BODY_EXCERPT_BYTES of an answer's body as text: a character cut at the end is dropped."""
    return body[:BODY_EXCERPT_BYTES].decode(errors="ignore" if len(body) > BODY_EXCERPT_BYTES else "replace")


class Attempt(CamelModel):
    """One attempt to deliver a response (or a test) to the client's response URL."""

    webhook_id: str
    """The response's `webhook-id` header: the same on every attempt of it."""
    conversation_id: str
    """The client's own conversation id (empty for a test delivery)."""
    type: str
    """The response's message type (`test` for a test delivery)."""
    attempt: int
    """Which attempt of this response it was: 1 for the first POST."""
    trigger: Trigger
    at: AwareDatetime
    """When the POST began."""
    status: int | None
    """The receiver's HTTP status, or null when it did not answer."""
    failure: Failure | None
    """Why it failed, or null when it was delivered (a 2xx)."""
    duration_ms: int
    """From the POST's start to its answer (or to the failure)."""
    body: str
    """The first 1 KB of the receiver's answer (never the request's headers or secrets)."""

    @property
    def delivered(self) -> bool:
        return self.failure is None

    @classmethod
    def of(
        cls,
        outcome: Outcome,
        *,
        webhook_id: str,
        conversation_id: str,
        type: str,
        attempt: int,
        trigger: Trigger,
        at: datetime,
    ) -> Attempt:
        return cls(
            webhook_id=webhook_id,
            conversation_id=conversation_id,
            type=type,
            attempt=attempt,
            trigger=trigger,
            at=at,
            status=outcome.status,
            failure=outcome.failure,
            duration_ms=outcome.duration_ms,
            body=outcome.body,
        )

    def wire(self) -> dict[str, object]:
        """As GET /deliveries shows it: every field, null where there is nothing."""
        return self.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class Skip:
    """A response not POSTed because its client's endpoint was off (a 410) or the client disabled: not an attempt,
    and never shown as one, but kept beside the attempts so that POST /client/recover finds its conversation."""

    webhook_id: str
    conversation_id: str
    at: datetime


class AttemptsPage(CamelModel):
    """The client's attempts, newest first (GET /deliveries)."""

    attempts: list[Attempt]
    cursor: str | None
    """Pass it back as `cursor` for the next page, with the same filters; null: there is nothing older."""


class DeliveriesQuery(CamelModel):
    """The query parameters of GET /deliveries (read by relay.edge.api.read_query)."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: Annotated[Id | None, Field(description="Only this conversation's attempts.")] = None
    webhook_id: Annotated[
        str | None,
        StringConstraints(min_length=1, max_length=ID_MAX_LENGTH + 4),
        Field(description="Only the attempts of the response with this `webhook-id`."),
    ] = None
    status: Annotated[
        Literal["failed", "delivered"] | None, Field(description="Only failed, or only delivered, attempts.")
    ] = None
    since: Annotated[UtcTime | None, Field(description="Only attempts at or after this time (RFC 3339).")] = None
    until: Annotated[UtcTime | None, Field(description="Only attempts at or before this time (RFC 3339).")] = None
    limit: Annotated[int, Field(ge=1, le=PAGE_MAX_ATTEMPTS, description="Attempts per answer at most.")] = (
        PAGE_MAX_ATTEMPTS
    )
    cursor: Annotated[
        str | None, Field(min_length=1, description="The `cursor` of the previous answer: the page after it.")
    ] = None
