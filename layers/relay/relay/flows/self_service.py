"""Client self-service, for a client token only (the edge refuses a conversation token, relay.edge.access):
GET /deliveries: the client's own attempts from the attempt log, newest first."""

from __future__ import annotations

from typing import Protocol

from relay.attempts import AttemptsPage, DeliveriesQuery
from relay.caller import Caller
from relay.errors import Forbidden, InvalidRequest, RelayError, Unauthorized
from relay.observability import logger

REFUSALS: tuple[type[RelayError], ...] = (Unauthorized, Forbidden, InvalidRequest)
"""What the self-service routes can refuse a request with."""


class Attempts(Protocol):
    """What self-service needs of the attempt log (relay.stores.attempts.AttemptLog)."""

    def page(self, client_id: str, query: DeliveriesQuery) -> AttemptsPage: ...


class SelfService:
    def __init__(self, attempts: Attempts) -> None:
        self._attempts = attempts

    def deliveries(self, caller: Caller, query: DeliveriesQuery) -> AttemptsPage:
        """The caller's attempts matching `query`, newest first, and the cursor to the page after."""
        if query.since is not None and query.until is not None and query.until < query.since:
            raise InvalidRequest("query parameter until: must not be before since", field="until")
        page = self._attempts.page(caller.client_id, query)
        logger.info("attempts read", extra={"attempts": len(page.attempts), "more": page.cursor is not None})
        return page
