"""Client self-service, for a client token only (the edge refuses a conversation token, relay.edge.access):
GET /deliveries: the client's own attempts from the attempt log, newest first.
GET /client: the client's record (no secret) · its endpoint's state · the attempt log's last success and failure
and a day's counts · its stopped conversations."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from relay.attempts import Attempt, AttemptsPage, DeliveriesQuery
from relay.caller import Caller
from relay.client_status import (
    COUNT_HOURS,
    ClientProfile,
    ClientStatus,
    Counts,
    StoppedConversation,
    endpoint_status,
)
from relay.errors import Forbidden, InvalidRequest, RelayError, Unauthorized
from relay.observability import logger

REFUSALS: tuple[type[RelayError], ...] = (Unauthorized, Forbidden, InvalidRequest)
"""What the self-service routes can refuse a request with."""


class Attempts(Protocol):
    """What self-service needs of the attempt log (relay.stores.attempts.AttemptLog)."""

    def page(self, client_id: str, query: DeliveriesQuery) -> AttemptsPage: ...
    def latest(self, client_id: str, outcome: str) -> Attempt | None: ...
    def earliest(self, client_id: str, outcome: str, since: datetime | None) -> Attempt | None: ...
    def count(self, client_id: str, outcome: str, since: datetime) -> int: ...


class Profiles(Protocol):
    """What self-service needs of the clients store (relay.stores.clients.ClientStore)."""

    def profile(self, client_id: str) -> ClientProfile | None: ...


class Stops(Protocol):
    """What self-service needs of the delivery state (relay.stores.delivery_state.DeliveryState)."""

    def stops_of(self, client_id: str) -> list[StoppedConversation]: ...


class SelfService:
    def __init__(
        self, clients: Profiles, attempts: Attempts, stops: Stops, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._clients = clients
        self._attempts = attempts
        self._stops = stops
        self._clock = clock

    def deliveries(self, caller: Caller, query: DeliveriesQuery) -> AttemptsPage:
        """The caller's attempts matching `query`, newest first, and the cursor to the page after."""
        if query.since is not None and query.until is not None and query.until < query.since:
            raise InvalidRequest("query parameter until: must not be before since", field="until")
        page = self._attempts.page(caller.client_id, query)
        logger.info("attempts read", extra={"attempts": len(page.attempts), "more": page.cursor is not None})
        return page

    def status(self, caller: Caller) -> ClientStatus:
        """The caller's record and endpoint, as GET /client shows them."""
        client_id = caller.client_id
        profile = self._clients.profile(client_id)
        if profile is None:  # deleted since its token was checked
            raise Unauthorized(f"client '{client_id}' no longer exists")
        success = self._attempts.latest(client_id, "delivered")
        failure = self._attempts.latest(client_id, "failed")
        failing_since = None
        if failure is not None and (success is None or failure.at > success.at):
            first = self._attempts.earliest(client_id, "failed", success.at if success else None)
            failing_since = first.at if first else None
        day_ago = datetime.fromtimestamp(self._clock(), UTC) - timedelta(hours=COUNT_HOURS)
        return ClientStatus(
            client_id=client_id,
            name=profile.name,
            response_url=str(profile.response_url) if profile.response_url else None,
            endpoint=endpoint_status(profile, success, failure, failing_since),
            last_success=success,
            last_failure=failure,
            last_24_hours=Counts(
                delivered=self._attempts.count(client_id, "delivered", day_ago),
                failed=self._attempts.count(client_id, "failed", day_ago),
            ),
            stopped_conversations=self._stops.stops_of(client_id) if profile.stopped_conversations else [],
        )
