"""A client's rate on the client API: a token bucket of `burst` requests that refills at `rate` a second.

The bucket is kept as GCRA (the generic cell rate algorithm) keeps it: one number per client, its theoretical
arrival time `tat`, the moment by which every request admitted so far would have been paid for at the rate. A
request is admitted when `tat` is no further ahead of now than the burst allows, and moves it on by one interval;
an idle bucket's `tat` is in the past, and starts again from now. One number, so one conditional write admits a
request however many containers share the bucket (relay.stores.rate_limits). Times are whole microseconds since
the epoch, so DynamoDB adds them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

DEFAULT_RATE = 20
"""Requests per second a client may make on the client API, unless the stack's ClientRateLimit says otherwise
(template.yaml's default is this; a test keeps them equal) or the client has a rate of its own (relay-clients)."""

BURST_SECONDS = 2
"""A client's burst is this many seconds of its rate: twice the rate, as the contract says."""

MAX_RATE = 500
"""A client's bucket is one item, and DynamoDB writes one item at most 1,000 times a second (a partition's limit): a
request costs a second write when a container's guess of the bucket's state is stale, so 500 requests a second."""

Rate = Annotated[int, Field(ge=1, le=MAX_RATE)]
"""Requests per second, a whole number from 1 to MAX_RATE."""

MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class Verdict:
    """What the bucket said to one request, with what the RateLimit headers tell the client."""

    admitted: bool
    limit: int
    """The burst: the most requests the client can make at once, and what `remaining` counts down from."""
    remaining: int
    """Requests the client can make right now."""
    reset_seconds: int
    """Seconds until the bucket is full again (0: it is full)."""
    retry_after_seconds: int
    """Seconds until a refused request would be admitted (0 when admitted)."""


@dataclass(frozen=True)
class RateLimit:
    """A rate (requests per second) and its burst (BURST_SECONDS of it)."""

    rate: int

    @property
    def burst(self) -> int:
        return self.rate * BURST_SECONDS

    @property
    def interval(self) -> int:
        """Microseconds each request costs; rounded up, so the rate is never exceeded."""
        return -(-MICROSECONDS // self.rate)

    def ceiling(self, now: int) -> int:
        """The furthest ahead of `now` a bucket's `tat` may be for a request to be admitted: all but one of the
        burst already spent."""
        return now + (self.burst - 1) * self.interval

    def admits(self, tat: int, now: int) -> bool:
        """Whether a bucket whose `tat` is this takes a request at `now`."""
        return tat <= self.ceiling(now)

    def admitted(self, tat: int, now: int) -> Verdict:
        """The verdict on a request admitted at `now`, which moved the bucket's `tat` on to `tat`."""
        remaining = (now + self.burst * self.interval - tat) // self.interval
        return Verdict(True, self.burst, max(0, min(self.burst, remaining)), _seconds(tat - now), 0)

    def refused(self, tat: int, now: int) -> Verdict:
        """The verdict on a request refused at `now` by a bucket whose `tat` is this far ahead."""
        return Verdict(False, self.burst, 0, _seconds(tat - now), max(1, _seconds(tat - self.ceiling(now))))


def _seconds(microseconds: int) -> int:
    """Whole seconds, rounded up: waiting that long is always enough."""
    return max(0, -(-microseconds // MICROSECONDS))
