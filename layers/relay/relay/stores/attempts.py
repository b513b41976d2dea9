"""The attempt log: one record per delivery attempt, in the client's partition, kept `AttemptRetentionDays`.

A record's sort key starts with its outcome, then its time: `delivered#<at>#<webhook-id>#<attempt>` or
`failed#…`. So the last failure, the last success and either's count over a window are each one query of just
those records, and GET /deliveries reads the two outcomes newest first and merges them. Filters on the
conversation or the webhook-id are applied by DynamoDB to what it reads (read units are counted before them).
A response skipped because its endpoint was off is kept as `skipped#<at>#<webhook-id>` (relay.attempts.Skip), for
POST /client/recover only. Writes are batched: the delivery function writes an invocation's records in one
BatchWriteItem.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.attempts import EARLIEST, LATEST, Attempt, AttemptsPage, DeliveriesQuery, Skip
from relay.errors import InvalidRequest
from relay.observability import logger

BATCH_ITEMS = 25
"""BatchWriteItem's most items per call."""

UNPROCESSED_TRIES = 4
"""Tries of the items a BatchWriteItem left unprocessed (throttled) before they are given up, logged."""

MAX_PAGES_PER_ANSWER = 10
"""Queries one GET /deliveries makes at most: a filter that matches little answers with fewer and a cursor."""

OUTCOMES = ("delivered", "failed")

FILTER_VALUES = 100
"""The most values one IN of a filter expression takes."""


def _stamp(at: datetime) -> str:
    """A time as the sort key holds it: UTC, fixed width, so text order is time order."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sort_key(attempt: Attempt) -> str:
    outcome = "delivered" if attempt.delivered else "failed"
    return f"{outcome}#{_stamp(attempt.at)}#{attempt.webhook_id}#{attempt.attempt}"


def _bounds(outcome: str, since: datetime | None, until: datetime | None) -> tuple[str, str]:
    # Within the years the stamp writes with four digits. '$' sorts right after '#': the upper bound takes every
    # record stamped `until`, whatever follows its stamp.
    low, high = max(since or EARLIEST, EARLIEST), min(until or LATEST, LATEST)
    return f"{outcome}#{_stamp(low)}", f"{outcome}#{_stamp(high)}$"


@dataclass
class _Stream:
    """One outcome's records, newest first, read a page at a time."""

    outcome: str
    low: str
    high: str
    after: str | None = None
    """The sort key the next query starts after: the last record taken or skipped by the filter."""
    exhausted: bool = False
    buffer: list[dict[str, Any]] = field(default_factory=list)
    last_evaluated: str | None = None

    @property
    def waiting(self) -> bool:
        """Has more records, none read yet: the merge cannot tell what is newest until this one is read."""
        return not self.buffer and not self.exhausted


class AttemptLog:
    """The attempts table."""

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        retention_days: int = 30,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._retention_seconds = retention_days * 86400
        self._sleep = sleep

    # ── writing ──

    def write(self, records: Sequence[tuple[str, Attempt | Skip]]) -> None:
        """Write (client id, attempt or skip) records, BATCH_ITEMS a call. What DynamoDB still leaves unprocessed after
        UNPROCESSED_TRIES, or refuses, is logged and given up: a record is never worth failing a delivery for (a
        failed invocation would deliver its batch's last conversation again)."""
        for start in range(0, len(records), BATCH_ITEMS):
            requests = [
                {"PutRequest": {"Item": self._item(*record)}} for record in records[start : start + BATCH_ITEMS]
            ]
            try:
                requests = self._put(requests)
            except (BotoCoreError, ClientError) as error:
                logger.error("attempt records not written", extra={"records": len(requests), "error": str(error)})
                continue
            if requests:
                logger.error("attempt records not written: DynamoDB throttled them", extra={"records": len(requests)})

    def _put(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The puts, sent again while DynamoDB leaves some unprocessed; what it still leaves after the last try."""
        for tries in range(1, UNPROCESSED_TRIES + 1):
            answer = self._dynamodb.batch_write_item(RequestItems={self._table: requests})
            requests = answer.get("UnprocessedItems", {}).get(self._table, [])
            if not requests:
                break
            if tries < UNPROCESSED_TRIES:
                self._sleep(0.05 * 2**tries)
        return requests

    def _item(self, client_id: str, attempt: Attempt | Skip) -> dict[str, Any]:
        expires = int(attempt.at.timestamp()) + self._retention_seconds
        if isinstance(attempt, Skip):
            return {
                "clientId": {"S": client_id},
                "key": {"S": f"skipped#{_stamp(attempt.at)}#{attempt.webhook_id}"},
                "webhookId": {"S": attempt.webhook_id},
                "conversationId": {"S": attempt.conversation_id},
                "expiresAt": {"N": str(expires)},
            }
        item: dict[str, Any] = {
            "clientId": {"S": client_id},
            "key": {"S": _sort_key(attempt)},
            "webhookId": {"S": attempt.webhook_id},
            "conversationId": {"S": attempt.conversation_id},
            "type": {"S": attempt.type},
            "attempt": {"N": str(attempt.attempt)},
            "trigger": {"S": attempt.trigger},
            "at": {"S": attempt.at.astimezone(UTC).isoformat()},
            "durationMs": {"N": str(attempt.duration_ms)},
            "body": {"S": attempt.body},
            "expiresAt": {"N": str(expires)},
        }
        if attempt.status is not None:
            item["status"] = {"N": str(attempt.status)}
        if attempt.failure is not None:
            item["failure"] = {"S": attempt.failure}
        return item

    # ── reading ──

    def page(self, client_id: str, query: DeliveriesQuery) -> AttemptsPage:
        """The client's attempts matching `query`, newest first, and the cursor to the next page."""
        outcomes: list[str] = [query.status] if query.status else list(OUTCOMES)
        streams = [_Stream(outcome, *_bounds(outcome, query.since, query.until)) for outcome in outcomes]
        _resume(streams, query.cursor)
        taken: list[dict[str, Any]] = []
        queries = 0
        while len(taken) < query.limit and queries < MAX_PAGES_PER_ANSWER:
            if waiting := next((stream for stream in streams if stream.waiting), None):
                self._read(client_id, waiting, query)
                queries += 1
                continue
            ready = [stream for stream in streams if stream.buffer]
            if not ready:
                break
            newest = max(ready, key=lambda stream: stream.buffer[0]["key"]["S"].partition("#")[2])
            item = newest.buffer.pop(0)
            taken.append(item)
            newest.after = item["key"]["S"]
            if not newest.buffer and newest.last_evaluated is None:
                newest.exhausted = True
            elif not newest.buffer:
                newest.after = newest.last_evaluated
        for stream in streams:  # what was read and not taken is read again from the cursor
            stream.buffer.clear()
        cursor = None if all(stream.exhausted for stream in streams) else _cursor(streams)
        return AttemptsPage(attempts=[_attempt(item) for item in taken], cursor=cursor)

    def _read(self, client_id: str, stream: _Stream, query: DeliveriesQuery) -> None:
        filters, values = [], {}
        if query.conversation_id is not None:
            filters.append("conversationId = :conversation")
            values[":conversation"] = {"S": query.conversation_id}
        if query.webhook_id is not None:
            filters.append("webhookId = :webhook")
            values[":webhook"] = {"S": query.webhook_id}
        answer = self._query(
            client_id,
            stream.low,
            stream.high,
            newest_first=True,
            limit=query.limit,
            after=stream.after,
            filter=" AND ".join(filters) or None,
            values=values,
        )
        stream.buffer = answer["Items"]
        evaluated = answer.get("LastEvaluatedKey")
        stream.last_evaluated = evaluated["key"]["S"] if evaluated else None
        if not stream.buffer:
            stream.after = stream.last_evaluated or stream.after
            stream.exhausted = stream.last_evaluated is None

    def latest(self, client_id: str, outcome: str) -> Attempt | None:
        """The client's newest delivered or failed attempt still kept, in one read."""
        items = self._query(client_id, *_bounds(outcome, None, None), newest_first=True, limit=1)["Items"]
        return _attempt(items[0]) if items else None

    def earliest(self, client_id: str, outcome: str, since: datetime | None) -> Attempt | None:
        """The client's first delivered or failed attempt after `since` (of those kept), in one read."""
        items = self._query(client_id, *_bounds(outcome, since, None), newest_first=False, limit=1)["Items"]
        return _attempt(items[0]) if items else None

    def undelivered(self, client_id: str, since: datetime, until: datetime) -> list[tuple[str, str]]:
        """(conversation, webhook-id) of each failed attempt and each skipped response in the window."""
        found = []
        for outcome in ("failed", "skipped"):
            low, high = _bounds(outcome, since, until)
            for item in self._all(client_id, low, high, projection="conversationId, webhookId"):
                found.append((item["conversationId"]["S"], item["webhookId"]["S"]))
        return found

    def delivered(self, client_id: str, since: datetime, conversation_ids: Sequence[str]) -> set[str]:
        """The webhook-ids delivered since `since` in these conversations (a read of every delivery since then)."""
        found: set[str] = set()
        low, high = _bounds("delivered", since, None)
        for start in range(0, len(conversation_ids), FILTER_VALUES):
            chunk = conversation_ids[start : start + FILTER_VALUES]
            values = {f":c{n}": {"S": conversation} for n, conversation in enumerate(chunk)}
            filter = f"conversationId IN ({', '.join(values)})"
            items = self._all(client_id, low, high, projection="webhookId", filter=filter, values=values)
            found |= {item["webhookId"]["S"] for item in items}
        return found

    def _all(
        self,
        client_id: str,
        low: str,
        high: str,
        *,
        projection: str,
        filter: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        items, after = [], None
        while True:
            answer = self._query(
                client_id,
                low,
                high,
                newest_first=False,
                after=after,
                filter=filter,
                values=values,
                projection=projection,
            )
            items += answer["Items"]
            if "LastEvaluatedKey" not in answer:
                return items
            after = answer["LastEvaluatedKey"]["key"]["S"]

    def count(self, client_id: str, outcome: str, since: datetime) -> int:
        """How many of the client's attempts since `since` had this outcome: a count of just those records."""
        low, high = _bounds(outcome, since, None)
        total, after = 0, None
        while True:
            answer = self._query(client_id, low, high, newest_first=False, after=after, select_count=True)
            total += int(answer["Count"])
            if "LastEvaluatedKey" not in answer:
                return total
            after = answer["LastEvaluatedKey"]["key"]["S"]

    def _query(
        self,
        client_id: str,
        low: str,
        high: str,
        *,
        newest_first: bool,
        limit: int | None = None,
        after: str | None = None,
        filter: str | None = None,
        values: dict[str, Any] | None = None,
        select_count: bool = False,
        projection: str | None = None,
    ) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "clientId = :client AND #key BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#key": "key"},
            "ExpressionAttributeValues": {
                ":client": {"S": client_id},
                ":low": {"S": low},
                ":high": {"S": high},
                **(values or {}),
            },
            "ScanIndexForward": not newest_first,
        }
        if limit is not None:
            parameters["Limit"] = limit
        if after is not None:
            parameters["ExclusiveStartKey"] = {"clientId": {"S": client_id}, "key": {"S": after}}
        if filter:
            parameters["FilterExpression"] = filter
        if select_count:
            parameters["Select"] = "COUNT"
        if projection:
            parameters["ProjectionExpression"] = projection
        answer: dict[str, Any] = self._dynamodb.query(**parameters)
        return answer


def _cursor(streams: list[_Stream]) -> str:
    state = {stream.outcome: (False if stream.exhausted else stream.after) for stream in streams}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _resume(streams: list[_Stream], cursor: str | None) -> None:
    """Each stream where the cursor left it; a cursor of another query (other filters) is refused, naming it."""
    if cursor is None:
        return
    bad = InvalidRequest(
        "query parameter cursor: not a cursor of this query (pass the previous answer's, with the same filters)",
        field="cursor",
    )
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    if not isinstance(state, dict) or set(state) != {stream.outcome for stream in streams}:
        raise bad
    for stream in streams:
        position = state[stream.outcome]
        if position is False:
            stream.exhausted = True
        elif position is None:
            continue
        elif isinstance(position, str) and stream.low <= position <= stream.high:
            stream.after = position
        else:
            raise bad


def _attempt(item: dict[str, Any]) -> Attempt:
    return Attempt(
        webhook_id=item["webhookId"]["S"],
        conversation_id=item["conversationId"]["S"],
        type=item["type"]["S"],
        attempt=int(item["attempt"]["N"]),
        trigger=item["trigger"]["S"],
        at=datetime.fromisoformat(item["at"]["S"]),
        status=int(item["status"]["N"]) if "status" in item else None,
        failure=item["failure"]["S"] if "failure" in item else None,
        duration_ms=int(item["durationMs"]["N"]),
        body=item["body"]["S"],
    )
