"""Client self-service, for a client token only (the edge refuses a conversation token, relay.edge.access):
GET /deliveries: the client's own attempts from the attempt log, newest first.
GET /client: the client's record (no secret) · its endpoint's state · the attempt log's last success and failure
and a day's counts · its stopped conversations.
POST /client/test: a signed delivery of type `test` to the response URL now · recorded in the attempt log.
PUT /client/response-url: set or clear the URL, switching the endpoint on · resume its parked conversations.
POST /client/signing-secret: a new signing secret, the previous one valid for a grace period."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BeforeValidator, ConfigDict, Field, HttpUrl, WithJsonSchema

from relay import signing
from relay.adapters.webhook import DeliveryFailed, ResponseUrlGone, WebhookSender
from relay.attempts import TEST_CONVERSATION, Attempt, AttemptsPage, DeliveriesQuery, Outcome, Trigger
from relay.caller import Caller
from relay.client_status import (
    COUNT_HOURS,
    ClientProfile,
    ClientStatus,
    Counts,
    StoppedConversation,
    endpoint_status,
    failing_after,
)
from relay.endpoints import PARKING
from relay.errors import Forbidden, InvalidRequest, NoResponseUrl, RateLimited, RelayError, TooLarge, Unauthorized
from relay.flows.throttling import Throttle
from relay.models import CamelModel, ClientResponse
from relay.observability import logger, metrics
from relay.stores.clients import Rotation

REFUSALS: tuple[type[RelayError], ...] = (Unauthorized, Forbidden, InvalidRequest, TooLarge, NoResponseUrl, RateLimited)
"""What the self-service routes can refuse a request with."""

GRACE_MAX_SECONDS = 30 * 86400
"""The longest a rotated signing secret stays valid beside the new one."""


URL_MAX_LENGTH = 2000
URL_SCHEMA = {"type": "string", "format": "uri", "minLength": 1, "maxLength": URL_MAX_LENGTH}
"""A response URL as openapi.yaml describes it. Checked as sent: pydantic's own limit, 2,083 characters, counts the
URL as it normalizes it (with a '/' added to one without a path), so a URL sent at that limit was refused."""


def _within_url_limit(value: object) -> object:
    if isinstance(value, str) and len(value) > URL_MAX_LENGTH:
        raise ValueError(f"URL should have at most {URL_MAX_LENGTH} characters")
    return value


class ResponseUrlChange(CamelModel):
    """The body of PUT /client/response-url."""

    model_config = ConfigDict(extra="forbid")

    response_url: Annotated[HttpUrl, BeforeValidator(_within_url_limit), WithJsonSchema(URL_SCHEMA)] | None
    """Where responses are POSTed from now on (http or https); null: no webhook, SNS and polling only."""


def _not_a_boolean(value: object) -> object:
    """JSON's true and false are not numbers, though pydantic reads them as 1 and 0."""
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer")
    return value


class SecretRotation(CamelModel):
    """The body of POST /client/signing-secret (optional)."""

    model_config = ConfigDict(extra="forbid")

    grace_seconds: Annotated[int, Field(ge=0, le=GRACE_MAX_SECONDS), BeforeValidator(_not_a_boolean)] = 24 * 3600
    """How long the previous secret stays valid: deliveries carry both signatures meanwhile. 0: it stops now."""


class NewSigningSecret(CamelModel):
    """A new signing secret, shown this once."""

    signing_secret: str
    """`whsec_…`: verify deliveries with it (Standard Webhooks)."""
    previous_valid_until: datetime
    """Until then deliveries carry a signature with the previous secret too."""


class Attempts(Protocol):
    """What self-service needs of the attempt log (relay.stores.attempts.AttemptLog)."""

    def page(self, client_id: str, query: DeliveriesQuery) -> AttemptsPage: ...
    def latest(self, client_id: str, outcome: str) -> Attempt | None: ...
    def earliest(self, client_id: str, outcome: str, since: datetime | None) -> Attempt | None: ...
    def count(self, client_id: str, outcome: str, since: datetime) -> int: ...
    def write(self, records: Sequence[tuple[str, Attempt]]) -> None: ...


class Clients(Protocol):
    """What self-service needs of the clients store (relay.stores.clients.ClientStore)."""

    def profile(self, client_id: str) -> ClientProfile | None: ...
    def signing(self, client_id: str, now: datetime) -> tuple[ClientProfile, list[str]] | None: ...
    def set_url(self, client_id: str, url: str | None) -> None: ...
    def rotate(self, client_id: str, rotation: Rotation, now: datetime) -> None: ...


class State(Protocol):
    """What self-service needs of the delivery state (relay.stores.delivery_state.DeliveryState)."""

    def stops_of(self, client_id: str) -> list[StoppedConversation]: ...
    def parked(self, client_id: str) -> list[str]: ...


class SelfService:
    def __init__(
        self,
        clients: Clients,
        attempts: Attempts,
        state: State,
        webhooks: WebhookSender,
        nudge: Callable[[str, Sequence[str]], None],
        *,
        throttle: Throttle | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`nudge(client_id, conversation_ids)` resumes parked conversations (relay.adapters.redelivery); each
        request counts against the client's rate (`throttle`; None for an operator's, relay-clients)."""
        self._clients = clients
        self._attempts = attempts
        self._state = state
        self._webhooks = webhooks
        self._nudge = nudge
        self._throttle = throttle
        self._clock = clock

    def deliveries(self, caller: Caller, query: DeliveriesQuery) -> AttemptsPage:
        """The caller's attempts matching `query`, newest first, and the cursor to the page after."""
        self._count(caller)
        if query.since is not None and query.until is not None and query.until < query.since:
            return AttemptsPage(attempts=[], cursor=None)  # an empty window: openapi.yaml cannot say it is wrong
        page = self._attempts.page(caller.client_id, query)
        logger.info("attempts read", extra={"attempts": len(page.attempts), "more": page.cursor is not None})
        return page

    def status(self, caller: Caller) -> ClientStatus:
        """The caller's record and endpoint, as GET /client shows them."""
        self._count(caller)
        return self._status(caller.client_id)

    def _status(self, client_id: str) -> ClientStatus:
        profile = self._profile(client_id)
        success = self._attempts.latest(client_id, "delivered")
        failure = self._attempts.latest(client_id, "failed")
        failing_since = None
        if (after := failing_after(profile, success, failure)) is not None:
            first = self._attempts.earliest(client_id, "failed", after)
            failing_since = first.at if first else None
        day_ago = self._now() - timedelta(hours=COUNT_HOURS)
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
            stopped_conversations=self._state.stops_of(client_id) if profile.stopped_conversations else [],
        )

    def test(self, caller: Caller) -> Attempt:
        """POST a signed response of type `test` to the caller's response URL now, whatever its endpoint's state
        (it is not counted by the breaker); its attempt is recorded, and answered."""
        self._count(caller)
        now = self._now()
        found = self._clients.signing(caller.client_id, now)
        if found is None:
            raise Unauthorized(f"client '{caller.client_id}' no longer exists")
        profile, secrets = found
        if profile.response_url is None:
            raise NoResponseUrl("no response URL to test: set one with PUT /client/response-url")
        response = ClientResponse(
            type="test",
            payload={"text": "A test delivery from the messaging relay (POST /client/test)."},
            conversation_id=TEST_CONVERSATION,
            botpress_message_id=f"test-{uuid.uuid4()}",
            client_id=caller.client_id,
            user_id=TEST_CONVERSATION,
        )
        outcome: Outcome
        try:
            outcome = self._webhooks.post(str(profile.response_url), secrets, response.webhook_id, response.to_json())
        except (DeliveryFailed, ResponseUrlGone) as failure:
            outcome = failure.outcome
        attempt = Attempt.of(
            outcome,
            webhook_id=response.webhook_id,
            conversation_id=response.conversation_id,
            type=response.type,
            attempt=1,
            trigger=Trigger.TEST,
            at=now,
        )
        self._attempts.write([(caller.client_id, attempt)])
        metrics.add_metric(name="TestDelivery", unit=MetricUnit.Count, value=1)
        logger.info("test delivery", extra={"status": outcome.status, "failure": outcome.failure})
        return attempt

    def set_response_url(self, caller: Caller, change: ResponseUrlChange) -> ClientStatus:
        """Set or clear the caller's response URL, switching its endpoint on (after a 410, a breaker, a park or a
        disable); its parked conversations are resumed, each in order from the responses log."""
        self._count(caller)
        before = self._profile(caller.client_id)
        url = str(change.response_url) if change.response_url else None
        self._clients.set_url(caller.client_id, url)
        resumed: list[str] = []
        if url is not None and (before.parked_conversations or before.endpoint_state in PARKING):
            resumed = self._state.parked(caller.client_id)
            self._nudge(caller.client_id, resumed)
        metrics.add_metric(name="ResponseUrlSet", unit=MetricUnit.Count, value=1)
        logger.info(
            "response URL set by the client",
            extra={"response_url_host": change.response_url.host if change.response_url else None, "resumed": resumed},
        )
        return self._status(caller.client_id)

    def rotate_secret(self, caller: Caller, rotation: SecretRotation) -> NewSigningSecret:
        """A new signing secret for the caller; the previous one stays valid `grace_seconds` (both sign meanwhile)."""
        self._count(caller)
        self._profile(caller.client_id)
        now = self._now()
        grace = timedelta(seconds=rotation.grace_seconds)
        secret = signing.new_secret()
        self._clients.rotate(caller.client_id, Rotation(webhook_secret=secret, grace=grace), now)
        metrics.add_metric(name="SigningSecretRotated", unit=MetricUnit.Count, value=1)
        logger.info("signing secret rotated by the client", extra={"grace_seconds": rotation.grace_seconds})
        return NewSigningSecret(signing_secret=secret, previous_valid_until=now + grace)

    def _count(self, caller: Caller) -> None:
        if self._throttle is not None:
            self._throttle.take(caller.client_id)

    def _profile(self, client_id: str) -> ClientProfile:
        profile = self._clients.profile(client_id)
        if profile is None:  # deleted since its token was checked
            raise Unauthorized(f"client '{client_id}' no longer exists")
        return profile

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)
