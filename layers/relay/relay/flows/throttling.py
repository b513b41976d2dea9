"""Each client's rate on the client API (relay.rate_limits), checked after authentication on every route a client
or conversation token calls: over it, the request is refused (429), counted and logged with the client's id, and
nothing else is done. Each client has a bucket of its own, so no other client's requests are touched."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from relay.endpoints import at
from relay.errors import RateLimited
from relay.observability import logger, metrics
from relay.operations import RATE_LIMITED_EVERY_SECONDS, ClientRateLimited, EverySoOften, OperationalEvent
from relay.rate_limits import RateLimit, Verdict


class Buckets(Protocol):
    """The clients' buckets (relay.stores.rate_limits.RateLimits)."""

    def over(self, client_id: str, limit: RateLimit) -> Verdict | None: ...

    def take(self, client_id: str, limit: RateLimit) -> Verdict: ...


class Rates(Protocol):
    """Clients' own rates (relay.stores.clients.ClientStore, from what authentication read)."""

    def rate_of(self, client_id: str) -> int | None: ...


class Events(Protocol):
    """Where operators are told (relay.adapters.operations.OperationsPublisher)."""

    def publish(self, event: OperationalEvent) -> None: ...


class Throttle:
    def __init__(
        self,
        buckets: Buckets,
        rates: Rates,
        default_rate: int,
        *,
        events: Events,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`events` is told of a client over its rate (client.rate_limited), at most once a minute per container."""
        self._buckets = buckets
        self._rates = rates
        self._default_rate = default_rate
        self._events = events
        self._clock = clock
        self._told = EverySoOften(RATE_LIMITED_EVERY_SECONDS, clock)

    def check(self, client_id: str) -> None:
        """Refuses a request this container already knows is over the client's rate: no AWS call, nothing counted.
        For a request that may yet turn out not to count (a repeated messageId), before `take`."""
        limit = self._limit(client_id)
        if (verdict := self._buckets.over(client_id, limit)) is not None:
            self._refuse(client_id, limit, verdict)

    def take(self, client_id: str) -> None:
        """Counts the request against the client's rate, or refuses it uncounted."""
        limit = self._limit(client_id)
        verdict = self._buckets.take(client_id, limit)
        if not verdict.admitted:
            self._refuse(client_id, limit, verdict)

    def _limit(self, client_id: str) -> RateLimit:
        return RateLimit(self._rates.rate_of(client_id) or self._default_rate)

    def _refuse(self, client_id: str, limit: RateLimit, verdict: Verdict) -> NoReturn:
        metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=1)
        logger.info(
            "client over its rate",
            extra={"client_id": client_id, "rate": limit.rate, "retry_after": verdict.retry_after_seconds},
        )
        if self._told.due(client_id):
            reason = f"over its rate of {limit.rate} requests per second (bursts of {limit.burst})"
            self._events.publish(ClientRateLimited(client_id=client_id, at=at(self._clock()), reason=reason))
        raise RateLimited(
            f"client '{client_id}' is over its rate of {limit.rate} requests per second (bursts of {limit.burst}):"
            f" nothing was done; retry after {verdict.retry_after_seconds} s",
            verdict,
        )
