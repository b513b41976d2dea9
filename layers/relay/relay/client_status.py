"""A client's view of its own endpoint (GET /client): its response URL's state, what the attempt log says of it,
and the conversations whose delivery stopped. Never a secret or a token."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, ConfigDict

from relay.attempts import EARLIEST, Attempt
from relay.endpoints import PARKING, EndpointState
from relay.models import CamelModel, ClientEndpoint

type EndpointHealth = Literal["healthy", "failing", "open", "parked", "disabled", "off"]
"""What GET /client says of the endpoint: the breaker's states as the client record keeps them (relay.endpoints),
`failing` while failures have not opened the breaker yet, and `off` when nothing is POSTed to it (a 410, or no
URL)."""

COUNT_HOURS = 24
"""The window of GET /client's delivered and failed counts."""


class ClientProfile(ClientEndpoint):
    """What self-service reads of the client record: everything but its token hashes, and its signing secrets only
    where a delivery is signed (POST /client/test). relay.stores.clients reads just these attributes."""

    model_config = ConfigDict(extra="ignore")

    switched_on_at: datetime | None = None
    """When the client (or an operator) last set the URL: failures before it no longer count against it."""


class EndpointStatus(CamelModel):
    """The response URL's state: `healthy`; `failing` (its last attempts failed, the breaker not open yet);
    `open` (the breaker holds its responses without a POST until `openUntil`); `parked` or `disabled` (the relay
    gave up on it: its responses wait in the responses log); `off` (nothing is POSTed: it answered 410 Gone, or
    there is no URL). PUT /client/response-url switches it on again."""

    state: EndpointHealth
    since: AwareDatetime | None = None
    """When it began failing or was opened; when it was parked or disabled; when it was switched off; null while
    healthy."""
    reason: str | None = None
    """Why: the last failure seen."""
    open_until: AwareDatetime | None = None
    """While `open`: when the next probe may go."""


class StoppedConversation(CamelModel):
    """A conversation whose delivery stopped at an undeliverable response: that response and every later one went
    to the dead-letter queue (POST /client/recover delivers them again)."""

    conversation_id: str
    webhook_id: str
    """The response it stopped at."""
    since: AwareDatetime | None = None


class Counts(CamelModel):
    """Attempts of the last COUNT_HOURS, by outcome."""

    delivered: int
    failed: int


class ClientStatus(CamelModel):
    """The client as GET /client shows it to itself."""

    client_id: str
    name: str
    response_url: str | None
    endpoint: EndpointStatus
    last_success: Attempt | None
    """The newest delivered attempt the attempt log keeps."""
    last_failure: Attempt | None
    """The newest failed attempt the attempt log keeps."""
    last_24_hours: Counts
    stopped_conversations: list[StoppedConversation]


def failing_after(
    profile: ClientProfile, last_success: Attempt | None, last_failure: Attempt | None
) -> datetime | None:
    """None when the endpoint is not failing; else the time after which its failures count: its last success, or
    when it was switched on, whichever is later (or the earliest time, without either)."""
    counted = [at for at in (last_success.at if last_success else None, profile.switched_on_at) if at is not None]
    since = max(counted, default=EARLIEST)
    return since if last_failure is not None and last_failure.at > since else None


def endpoint_status(
    profile: ClientProfile, last_success: Attempt | None, last_failure: Attempt | None, failing_since: datetime | None
) -> EndpointStatus:
    """The endpoint's state from the record and the attempt log. `failing_since` is the first failure counted
    (failing_after), read only when the endpoint is failing."""
    if profile.response_url is None:
        return EndpointStatus(state="off", reason="no response URL: set one with PUT /client/response-url")
    if profile.response_url_off:
        gone = last_failure if last_failure is not None and last_failure.status == 410 else None
        return EndpointStatus(state="off", since=gone.at if gone else None, reason="the receiver answered 410 Gone")
    if profile.endpoint_state is not EndpointState.HEALTHY:
        parked = profile.endpoint_state in PARKING
        return EndpointStatus(
            state=profile.endpoint_state.value,  # the record's states are EndpointHealth's
            since=profile.endpoint_parked_at if parked and profile.endpoint_parked_at else profile.endpoint_since,
            reason=profile.endpoint_reason,
            open_until=profile.endpoint_open_until if profile.endpoint_state is EndpointState.OPEN else None,
        )
    if last_failure is not None and failing_after(profile, last_success, last_failure) is not None:
        return EndpointStatus(state="failing", since=failing_since or last_failure.at, reason=_said(last_failure))
    return EndpointStatus(state="healthy")


def _said(attempt: Attempt) -> str:
    if attempt.status is not None:
        return f"receiver answered HTTP {attempt.status}"
    return {"timeout": "no answer in time"}.get(str(attempt.failure), f"unreachable ({attempt.failure})")
