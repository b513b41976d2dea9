"""Reading the responses log: GET /conversations/{conversationId}/responses, and the replies of POST /messages?wait.

Waiting is a consistent query every POLL_INTERVAL_SECONDS: a response shows up at most that long after it is
recorded, and a 20 s long poll costs at most 81 reads. A query that finds something answers the request at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field

from relay.errors import InvalidRequest, UnknownConversation
from relay.models import ResponsesPage, scoped
from relay.observability import logger, metrics
from relay.stores.conversations import ConversationStore
from relay.stores.responses_log import PAGE_MAX_RESPONSES, Recorded, ResponsesLog, within_budget
from relay.watermarks import InvalidWatermark, Watermarks

POLL_INTERVAL_SECONDS = 0.25
QUIET_SECONDS = 1.0
"""The bot never says its turn is over: POST ?wait answers once the bot has been quiet this long after a response."""
LONG_POLL_MAX_SECONDS = 20
REPLY_WAIT_MAX_SECONDS = 25


class ResponsesQuery(BaseModel):
    """The query parameters of GET /conversations/{conversationId}/responses (read by relay.edge.api.read_query)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    after: Annotated[
        str | None, Field(min_length=1, description="A watermark of an earlier answer: only responses newer than it.")
    ] = None
    wait: Annotated[
        float,
        Field(ge=0, le=LONG_POLL_MAX_SECONDS, description="Seconds to hold the request while nothing is newer."),
    ] = 0
    limit: Annotated[
        int, Field(ge=1, le=PAGE_MAX_RESPONSES, description="Responses per answer at most (4 MiB of them at most).")
    ] = PAGE_MAX_RESPONSES


class ReplyWait(BaseModel):
    """The `wait` query parameter of POST /messages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wait: Annotated[
        float,
        Field(
            ge=0,
            le=REPLY_WAIT_MAX_SECONDS,
            description="Seconds (from the request's arrival) to wait for the bot's responses to this message.",
        ),
    ] = 0


class ResponsesReader:
    """One client's view of the responses log: only its own conversations, positions behind watermarks."""

    def __init__(
        self,
        log: ResponsesLog,
        conversations: ConversationStore,
        watermarks: Watermarks,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`clock` measures waits; `now` is the wall clock the log stamps `recorded_at` with."""
        self._log = log
        self._conversations = conversations
        self._watermarks = watermarks
        self._clock = clock
        self._sleep = sleep
        self._now = now

    def read(self, client_id: str, conversation_id: str, query: ResponsesQuery, until: float) -> ResponsesPage:
        """The responses after `query.after`; with `wait`, held until one is recorded or `until` (a clock time)."""
        position = 0 if query.after is None else self._position(query.after, client_id, conversation_id)
        found = self._log.after(client_id, conversation_id, position, query.limit)
        if not found and self._conversations.find(scoped(client_id, conversation_id)) is None:
            raise UnknownConversation(f"no conversation '{conversation_id}' of yours: send a message in it first")
        waited = query.wait > 0 and not found
        end = min(self._clock() + query.wait, until)
        while not found and (left := end - self._clock()) > 0:
            self._sleep(min(POLL_INTERVAL_SECONDS, left))
            found = self._log.after(client_id, conversation_id, position, query.limit)
        page = within_budget(found)
        metrics.add_metric(name="ResponsesPolled", unit=MetricUnit.Count, value=1)
        if waited:
            metrics.add_metric(name="LongPollAnswered" if found else "LongPollTimedOut", unit=MetricUnit.Count, value=1)
        logger.info(
            "responses read", extra={"responses": len(page), "long_poll": waited, "timed_out": waited and not found}
        )
        return self._page(client_id, conversation_id, page, position)

    def position(self, client_id: str, conversation_id: str) -> int:
        """Where the conversation's log ends now: what a message forwarded next is answered after."""
        return self._log.last_position(client_id, conversation_id)

    def replies(self, client_id: str, conversation_id: str, position: int, until: float) -> ResponsesPage:
        """The responses recorded after `position`, once the bot has been quiet QUIET_SECONDS after the last of
        them, or at `until` (a clock time) with whatever came; a full page answers at once.

        The quiet moment counts from when the log recorded the last response, so how late this notices it
        does not stretch the wait.
        """
        collected: list[Recorded] = []
        used_bytes = 0
        after = position
        while True:
            found = self._log.after(client_id, conversation_id, after, PAGE_MAX_RESPONSES - len(collected))
            kept = within_budget(found, used_bytes)
            collected += kept
            used_bytes += sum(len(entry.body.encode()) for entry in kept)
            after = collected[-1].position if collected else position
            left = until - self._clock()
            quiet_left = collected[-1].recorded_at + QUIET_SECONDS - self._now() if collected else left
            full = len(kept) < len(found) or len(collected) >= PAGE_MAX_RESPONSES
            if full or quiet_left <= 0 or left <= 0:
                break
            self._sleep(min(POLL_INTERVAL_SECONDS, left, quiet_left))
        metrics.add_metric(name="RepliesWaitedFor", unit=MetricUnit.Count, value=len(collected))
        if left <= 0:
            metrics.add_metric(name="ReplyWaitTimedOut", unit=MetricUnit.Count, value=1)
        logger.info("replies collected", extra={"responses": len(collected), "timed_out": left <= 0})
        return self._page(client_id, conversation_id, collected, position)

    def _position(self, watermark: str, client_id: str, conversation_id: str) -> int:
        try:
            return self._watermarks.read(watermark, client_id, conversation_id)
        except InvalidWatermark as error:
            raise InvalidRequest(f"query parameter after: {error}", field="after") from None

    def _page(self, client_id: str, conversation_id: str, recorded: list[Recorded], position: int) -> ResponsesPage:
        end = recorded[-1].position if recorded else position
        return ResponsesPage(
            responses=[entry.response() for entry in recorded],
            watermark=self._watermarks.issue(client_id, conversation_id, end),
        )
