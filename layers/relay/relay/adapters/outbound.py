"""Outbound HTTP over one urllib3 pool per container, so warm invocations reuse connections."""

from __future__ import annotations

from typing import NamedTuple

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, TimeoutError

CONCURRENT_REQUESTS = 10
"""At most this many requests at once per container: the delivery function POSTs a batch's conversations
(a batch holds at most 10 messages) in parallel, possibly all to one client's host."""

pool = urllib3.PoolManager(num_pools=50, maxsize=CONCURRENT_REQUESTS)


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes = b""


class PostFailed(Exception):
    """No HTTP answer: the peer could not be reached or did not answer in time."""

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


def post(url: str, body: str, headers: dict[str, str], timeout_seconds: float) -> int:
    """POST `body` and return the status; retries are the caller's business."""
    return exchange(url, body, headers, timeout_seconds).status


def exchange(url: str, body: str, headers: dict[str, str], timeout_seconds: float) -> Answer:
    """POST `body` and return the answer's status and headers (names in lower case)."""
    try:
        response = pool.request(
            "POST",
            url,
            body=body.encode(),
            headers=headers,
            # `total` bounds connecting and every read together, so a trickling peer cannot stall the caller.
            timeout=urllib3.Timeout(total=timeout_seconds, connect=min(timeout_seconds, 5.0)),
            retries=False,
            redirect=False,
        )
    except MaxRetryError as error:
        raise _failure(error.reason or error) from error
    except HTTPError as error:
        raise _failure(error) from error
    return Answer(response.status, {name.lower(): value for name, value in response.headers.items()}, response.data)


def _failure(error: Exception) -> PostFailed:
    # urllib3 makes a refused connection a kind of ConnectTimeoutError: it is not a timeout here.
    if isinstance(error, TimeoutError) and not isinstance(error, NewConnectionError):
        return PostFailed("no answer in time", timed_out=True)
    return PostFailed(f"unreachable ({type(error).__name__})", timed_out=False)
