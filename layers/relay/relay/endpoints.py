"""Endpoints: a client's response URL as delivery sees it, and the circuit breaker that keeps one client's failing,
slow or hanging receiver from holding up the delivery of every other client.

Each container keeps a breaker per endpoint and reacts at once to what its own POSTs show: after
`endpoint_failure_threshold` failures in a row (an error answer, a refusal, a timeout, or a success slower than
`endpoint_slow_seconds`) it opens, and the endpoint's responses are held in the queue without a POST (not an
attempt) until its cool-down ends. The other containers learn it from the client record, where the breaker's
changes are written (only its changes: a delivery writes nothing). After the cool-down one container claims the
probe on the client record, and that one response is POSTed; a prompt success closes the breaker everywhere.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

HOLD_GROWTH = 10
"""A held response comes back after a tenth of the time its endpoint has been failing (within the bounds below):
looked at often at first, then less, so the receives of an endpoint down for the whole retry window stay far
below the delivery queue's safety net (maxReceiveCount)."""

HOLD_MAX_COOLDOWNS = 10
"""The longest hold, in cool-downs: a receiver that comes back is delivered to within that."""


class EndpointState(StrEnum):
    """An endpoint's state as the client record keeps it (GET /client shows it)."""

    HEALTHY = "healthy"
    OPEN = "open"
    PARKED = "parked"
    """Open for longer than `endpoint_park_after_seconds`: its responses leave the delivery queue without a POST,
    and each conversation keeps, in a park record, where its delivery stopped; the responses log holds them."""
    DISABLED = "disabled"
    """Failing for `endpoint_disable_after_hours`: parked, and no longer probed until it is switched on again."""


PARKING = (EndpointState.PARKED, EndpointState.DISABLED)
"""The states in which an endpoint's responses are parked rather than held in the delivery queue."""


@dataclass(frozen=True)
class Post:
    """POST the response: the breaker is closed."""


@dataclass(frozen=True)
class Probe:
    """The breaker's cool-down is over: POST this one response, if the claim on the client record is ours."""


@dataclass(frozen=True)
class Hold:
    """Do not POST: the breaker is open. The response comes back after `seconds`, and it is not an attempt."""

    seconds: int


type Admission = Post | Probe | Hold


class Change(StrEnum):
    """What an outcome did to the breaker; each is written to the client record and counted as a metric."""

    OPENED = "EndpointOpened"
    PROBED = "EndpointProbed"
    CLOSED = "EndpointClosed"
    PARKED = "EndpointParked"
    DISABLED = "EndpointDisabled"


@dataclass(frozen=True)
class ProbeClaim:
    """The answer to a claim of the probe on the client record."""

    ours: bool
    open_until: datetime | None = None
    """When not ours: until when the breaker stays open (another container probes), or None: it was closed."""


@dataclass
class _Breaker:
    slots: threading.Semaphore
    failures: int = 0
    failing_since: float | None = None
    open_until: float = 0.0
    probing: bool = False


class Breakers:
    """A container's breakers, one per endpoint (a client's response URL); safe to use from several threads."""

    def __init__(
        self,
        failure_threshold: int,
        cooldown_seconds: int,
        slow_seconds: float,
        concurrency: int,
        clock: Callable[[], float],
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.slow_seconds = slow_seconds
        self._concurrency = concurrency
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}
        self._lock = threading.Lock()

    def _of(self, endpoint: str) -> _Breaker:
        with self._lock:
            breaker = self._breakers.get(endpoint)
            if breaker is None:
                breaker = self._breakers[endpoint] = _Breaker(slots=threading.Semaphore(self._concurrency))
            return breaker

    def admit(self, endpoint: str, shared_open_until: datetime | None, shared_since: datetime | None) -> Admission:
        """Whether a response to `endpoint` is POSTed, given what this container saw and the client record says."""
        now = self._clock()
        breaker = self._of(endpoint)
        with self._lock:
            open_until = max(breaker.open_until, shared_open_until.timestamp() if shared_open_until else 0.0)
            since = breaker.failing_since or (shared_since.timestamp() if shared_since else None)
            if round(now, 3) < round(open_until, 3) or breaker.probing:  # as at() writes them: to the millisecond
                return Hold(self._hold_seconds(now, open_until, since))
            if breaker.failures >= self.failure_threshold or shared_open_until is not None:
                return Probe()
            return Post()

    def claimed(self, endpoint: str) -> float:
        """This container has the probe: hold the endpoint's other responses meanwhile. Returns the new open-until."""
        breaker = self._of(endpoint)
        with self._lock:
            breaker.probing = True
            breaker.open_until = self._clock() + self.cooldown_seconds
            return breaker.open_until

    def probing(self, endpoint: str) -> bool:
        """Whether this container has the endpoint's probe."""
        breaker = self._of(endpoint)
        with self._lock:
            return breaker.probing

    def lost_claim(self, endpoint: str, open_until: datetime) -> None:
        """Another container has the probe, or has opened the breaker until `open_until`."""
        breaker = self._of(endpoint)
        with self._lock:
            breaker.open_until = max(breaker.open_until, open_until.timestamp())

    def reset(self, endpoint: str) -> None:
        """Another container closed the breaker."""
        breaker = self._of(endpoint)
        with self._lock:
            breaker.failures, breaker.failing_since, breaker.open_until, breaker.probing = 0, None, 0.0, False

    def failing_since(self, endpoint: str) -> float | None:
        breaker = self._of(endpoint)
        with self._lock:
            return breaker.failing_since

    def outcome(self, endpoint: str, succeeded: bool, seconds: float) -> Change | None:
        """Record a POST's outcome; returns the change it made to the breaker, if any."""
        now = self._clock()
        breaker = self._of(endpoint)
        healthy = succeeded and seconds < self.slow_seconds
        with self._lock:
            was_open = breaker.failures >= self.failure_threshold or breaker.probing
            breaker.probing = False
            if healthy:
                breaker.failures, breaker.failing_since, breaker.open_until = 0, None, 0.0
                return Change.CLOSED if was_open else None
            breaker.failures += 1
            if breaker.failing_since is None:
                breaker.failing_since = now - seconds
            if breaker.failures < self.failure_threshold:
                return None
            breaker.open_until = now + self.cooldown_seconds
            return None if was_open else Change.OPENED

    def open_until(self, endpoint: str) -> float:
        breaker = self._of(endpoint)
        with self._lock:
            return breaker.open_until

    @contextmanager
    def slot(self, endpoint: str) -> Iterator[None]:
        """One of the endpoint's POSTs in flight from this container: at most `concurrency` at once."""
        slots = self._of(endpoint).slots
        with slots:
            yield

    def _hold_seconds(self, now: float, open_until: float, since: float | None) -> int:
        until_probe = max(open_until - now, 1.0)
        growing = (now - since) / HOLD_GROWTH if since is not None else 0.0
        # Rounded to the millisecond first: times read back from the record carry float error.
        return math.ceil(round(min(max(until_probe, growing), HOLD_MAX_COOLDOWNS * self.cooldown_seconds), 3))


def at(seconds: float) -> datetime:
    """A time as the client record keeps it: UTC, to the millisecond."""
    return datetime.fromtimestamp(round(seconds, 3), UTC)
