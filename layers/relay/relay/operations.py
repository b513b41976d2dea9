"""Operational events: what an operator is told about a client's endpoint and traffic, one JSON message per event
on the operations topic (OperationsTopicArn), with the message attributes `clientId` and `type` for a
subscription's filter policy. relay.adapters.operations publishes them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from pydantic import AwareDatetime, HttpUrl

from relay.models import CamelModel

RATE_LIMITED_EVERY_SECONDS = 60
"""client.rate_limited is told at most once this often per client."""


class OperationalEvent(CamelModel):
    """What every event carries."""

    type: str
    client_id: str
    at: AwareDatetime
    """When it happened."""
    host: str | None = None
    """The host of the client's response URL (never the URL: its path or query may hold a secret)."""
    since: AwareDatetime | None = None
    reason: str | None = None

    def body(self) -> str:
        """The message: every field that applies, in JSON."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class EndpointFailing(OperationalEvent):
    """The endpoint's breaker opened after failed attempts in a row: its responses wait without a POST, and one
    probe goes after each cool-down. `since`: when the failures began; `reason`: the last one."""

    type: Literal["endpoint.failing"] = "endpoint.failing"


class EndpointRecovered(OperationalEvent):
    """A probe (or a delivery) succeeded promptly: the breaker closed and deliveries go on, parked conversations
    first. `since`: when the endpoint had begun failing."""

    type: Literal["endpoint.recovered"] = "endpoint.recovered"


class EndpointParked(OperationalEvent):
    """The endpoint has failed so long that its responses leave the delivery queue for the responses log, in order,
    until a probe succeeds or the client switches it on (PUT /client/response-url). `since`: when it was parked."""

    type: Literal["endpoint.parked"] = "endpoint.parked"


class EndpointDisabled(OperationalEvent):
    """The endpoint has failed for EndpointDisableAfterHours: parked, and no longer probed until the client (PUT
    /client/response-url) or an operator (relay-clients set-url) switches it on. `since`: when it was disabled."""

    type: Literal["endpoint.disabled"] = "endpoint.disabled"


class ConversationStopped(OperationalEvent):
    """A response used every attempt: its conversation stopped there, and it and every later response of the
    conversation go to the dead-letter queue, in order. `reason`: its last failure."""

    type: Literal["conversation.stopped"] = "conversation.stopped"
    conversation_id: str
    webhook_id: str
    """The response it stopped at."""


class ClientRateLimited(OperationalEvent):
    """The client sent faster than its rate and was refused 429 (told at most once a minute per client)."""

    type: Literal["client.rate_limited"] = "client.rate_limited"


EVENTS: tuple[type[OperationalEvent], ...] = (
    EndpointFailing,
    EndpointRecovered,
    EndpointParked,
    EndpointDisabled,
    ConversationStopped,
    ClientRateLimited,
)
"""Every event, as openapi.yaml documents them under `webhooks`."""


class EverySoOften:
    """What lets one event of a kind through per client and interval in this container (client.rate_limited: once
    every RATE_LIMITED_EVERY_SECONDS): a flood refused in many requests is told once, not once a request. Each
    container tells it at most that often."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, client_id: str) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(client_id)
            if last is not None and now - last < self._seconds:
                return False
            self._last[client_id] = now
            return True


def host_of(url: HttpUrl | None) -> str | None:
    return url.host if url is not None else None
