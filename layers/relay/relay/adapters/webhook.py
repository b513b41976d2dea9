"""The webhook POST: one response to a client's response URL, signed; what the receiver's answer asks for, and
what the attempt did (its outcome: status or failure, duration, the answer's first 1 KB) for the attempt log."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Protocol

from relay import signing
from relay.adapters import outbound
from relay.attempts import Failure, Outcome, excerpt
from relay.settings import MAX_RETRY_DELAY_SECONDS


class DeliveryFailed(Exception):
    """The receiver did not take the response; it is tried again after the schedule's next delay."""

    def __init__(self, reason: str, outcome: Outcome, *, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.retry_after = retry_after


class ResponseUrlGone(Exception):
    """The receiver answered 410 Gone: nothing more is POSTed to that URL until an operator sets it again."""

    def __init__(self, reason: str, outcome: Outcome) -> None:
        super().__init__(reason)
        self.outcome = outcome


class Exchange(Protocol):
    """One POST and its answer: `relay.adapters.outbound.exchange`, or a receiver's stand-in in a test."""

    def __call__(self, url: str, body: str, headers: dict[str, str], timeout_seconds: float) -> outbound.Answer: ...


class WebhookSender:
    """POSTs responses to clients' response URLs, signed with Standard Webhooks headers; any 2xx is success."""

    def __init__(
        self, timeout_seconds: float, exchange: Exchange = outbound.exchange, clock: Callable[[], float] = time.time
    ) -> None:
        self._timeout = timeout_seconds
        self._exchange = exchange
        self._clock = clock

    def post(self, url: str, signing_secrets: Sequence[str], webhook_id: str, body: str) -> Outcome:
        """POST one response and return what it did; raises DeliveryFailed or ResponseUrlGone (each carrying
        the outcome) for what the receiver's answer asks.

        `body` is sent as published, byte for byte, so what is signed is what consumers of the topic see.
        """
        started = self._clock()
        headers = signing.headers(signing_secrets, webhook_id, int(started), body)
        try:
            status, answer_headers, answer = self._exchange(url, body, headers, self._timeout)
        except outbound.PostFailed as failure:
            outcome = Outcome(None, failure.kind, "", self._ms_since(started))
            raise DeliveryFailed(f"receiver {failure}", outcome) from failure
        kind = None if 200 <= status < 300 else Failure.TOO_LARGE if status == 413 else Failure.HTTP
        outcome = Outcome(status, kind, excerpt(answer), self._ms_since(started))
        if status == 410:
            raise ResponseUrlGone("receiver answered 410 Gone", outcome)
        if kind is not None:
            wait = retry_after(answer_headers.get("retry-after"), self._clock()) if status in (429, 503) else None
            raise DeliveryFailed(f"receiver answered HTTP {status}", outcome, retry_after=wait)
        return outcome

    def _ms_since(self, started: float) -> int:
        return max(0, round((self._clock() - started) * 1000))


def retry_after(value: str | None, now: float) -> int | None:
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
        seconds = int(when.timestamp() - now + 0.999)
    return max(0, min(seconds, MAX_RETRY_DELAY_SECONDS))
