"""The rate limits table: each client's bucket (relay.rate_limits), shared by every container of the client API.

A request costs one conditional UpdateItem in the usual case, and DynamoDB applies the writes to one item one at
a time, so no two containers can both take the bucket's last request. Each of the bucket's two states has its
own write: an idle bucket (no `tat`, or one in the past) starts again from now; a busy one moves its `tat` on by
one interval while it is within the burst. A container guesses the state from the `tat` it last saw; a wrong
guess fails its condition, and DynamoDB hands back the item as it is (ReturnValuesOnConditionCheckFailure), so
the second try is right without a read. A refusal needs no write when the container last saw the bucket beyond
the burst: `tat` only ever grows, so it is beyond it still.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from cachetools import LRUCache

from relay.rate_limits import BURST_SECONDS, MICROSECONDS, RateLimit, Verdict

KEEP_IDLE_SECONDS = 3600
"""How long a bucket's item is kept after its last request. It is full again BURST_SECONDS after it, and a bucket
without an item is a full one: the time only keeps a steady client from rewriting its item afresh."""

TRIES = 3
"""Writes one request may take. Within one request `now` stands still and `tat` only grows, so a bucket goes from
idle to busy to beyond the burst and never back: two writes decide. A third is for an item deleted between them."""


class RateLimits:
    """Takes requests from clients' buckets, remembering the last `tat` it saw of each."""

    def __init__(self, dynamodb: Any, table_name: str, *, clock: Callable[[], float] = time.time) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._clock = clock
        self._seen: LRUCache[str, int] = LRUCache(maxsize=4096)

    def over(self, client_id: str, limit: RateLimit) -> Verdict | None:
        """A refusal when this container last saw the client's bucket beyond its burst; no AWS call."""
        now = self._now()
        seen = self._seen.get(client_id)
        if seen is None or limit.admits(seen, now):
            return None
        return limit.refused(seen, now)

    def take(self, client_id: str, limit: RateLimit) -> Verdict:
        """One request from the client's bucket: admitted and counted, or refused and not counted."""
        now = self._now()
        seen = self._seen.get(client_id)
        for _ in range(TRIES):
            if seen is not None and not limit.admits(seen, now):
                return limit.refused(seen, now)
            idle = seen is None or seen < now
            try:
                tat = self._start(client_id, limit, now) if idle else self._continue(client_id, limit, now)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                item = error.response.get("Item") or {}
                seen = int(item["tat"]["N"]) if "tat" in item else None
                if seen is not None:
                    self._seen[client_id] = seen
                continue
            self._seen[client_id] = tat
            return limit.admitted(tat, now)
        # Only when the item was deleted and written again between every try: refused for one interval.
        return limit.refused(limit.ceiling(now) + limit.interval, now)

    def _start(self, client_id: str, limit: RateLimit, now: int) -> int:
        """An idle bucket: its first request from now."""
        return self._update(
            client_id,
            "SET tat = :next, expiresAt = :expires",
            "attribute_not_exists(tat) OR tat < :now",
            {":next": now + limit.interval, ":now": now},
            now,
        )

    def _continue(self, client_id: str, limit: RateLimit, now: int) -> int:
        """A busy bucket: one interval more, while that leaves it within the burst."""
        return self._update(
            client_id,
            "SET tat = tat + :interval, expiresAt = :expires",
            "tat BETWEEN :now AND :ceiling",
            {":interval": limit.interval, ":now": now, ":ceiling": limit.ceiling(now)},
            now,
        )

    def _update(self, client_id: str, update: str, condition: str, values: dict[str, int], now: int) -> int:
        values = {**values, ":expires": now // MICROSECONDS + BURST_SECONDS + KEEP_IDLE_SECONDS}
        answer = self._dynamodb.update_item(
            TableName=self._table,
            Key={"clientId": {"S": client_id}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues={name: {"N": str(value)} for name, value in values.items()},
            ReturnValues="UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return int(answer["Attributes"]["tat"]["N"])

    def _now(self) -> int:
        return int(self._clock() * MICROSECONDS)
