"""Outbound HTTP over one urllib3 pool per container, so warm invocations reuse connections."""

from __future__ import annotations

from typing import NamedTuple

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError, NameResolutionError, NewConnectionError, SSLError, TimeoutError

from relay.attempts import Failure

CONCURRENT_REQUESTS = 10
"""At most this many requests at once per container: the delivery function POSTs a batch's conversations
(a batch holds at most 10 messages) in parallel, possibly all to one client's host."""

ANSWER_MAX_BYTES = 64 * 1024
"""The most of an answer's body read: a peer answering with more (a hostile receiver streaming gigabytes) cannot
fill the function's memory; its connection is closed instead of reused."""

pool = urllib3.PoolManager(num_pools=50, maxsize=CONCURRENT_REQUESTS)


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes = b""
    """At most ANSWER_MAX_BYTES of it."""


class PostFailed(Exception):
    """No HTTP answer: the peer could not be reached or did not answer in time; `kind` says which."""

    def __init__(self, reason: str, *, kind: Failure) -> None:
        super().__init__(reason)
        self.kind = kind

    @property
    def timed_out(self) -> bool:
        return self.kind is Failure.TIMEOUT


def post(url: str, body: str, headers: dict[str, str], timeout_seconds: float) -> int:
    """POST `body` and return the status; retries are the caller's business."""
    return exchange(url, body, headers, timeout_seconds).status


def exchange(url: str, body: str, headers: dict[str, str], timeout_seconds: float) -> Answer:
    """POST `body` and return the answer's status, headers (names in lower case) and body (its head)."""
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
            preload_content=False,
        )
        try:
            data = response.read(ANSWER_MAX_BYTES + 1)
        except HTTPError:
            response.close()
            raise
        if len(data) > ANSWER_MAX_BYTES:
            response.close()  # the rest is never read: the connection cannot serve another request
        response.release_conn()
    except MaxRetryError as error:
        raise _failure(error.reason or error) from error
    except HTTPError as error:
        raise _failure(error) from error
    headers_ = {name.lower(): value for name, value in response.headers.items()}
    return Answer(response.status, headers_, data[:ANSWER_MAX_BYTES])


def _failure(error: Exception) -> PostFailed:
    # urllib3 makes a refused connection (and a name that does not resolve) a kind of ConnectTimeoutError.
    if isinstance(error, NameResolutionError):
        return PostFailed("unreachable: its host name does not resolve", kind=Failure.DNS)
    if isinstance(error, SSLError):
        return PostFailed("unreachable: the TLS handshake failed", kind=Failure.TLS)
    if isinstance(error, TimeoutError) and not isinstance(error, NewConnectionError):
        return PostFailed("no answer in time", kind=Failure.TIMEOUT)
    return PostFailed(f"unreachable ({type(error).__name__})", kind=Failure.REFUSED)
