"""Who is calling, and conversation tokens.

Access: a request's bearer token is a client token (the client's back end, anything of its own) or a conversation
token (a browser or app: one conversation as one user, on the routes a browser needs).
POST /conversations/{conversationId}/tokens: client token · counted against the client's rate · a token for that
conversation and a user.
POST /tokens/refresh: conversation token, not expired · counted against its client's rate · a new one for the same
grant, from now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote, urlencode

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ConfigDict, ValidationError

from relay.conversation_tokens import (
    TTL_DEFAULT_SECONDS,
    ConversationGrant,
    ConversationTokens,
    TokenTtl,
    is_conversation_token,
)
from relay.edge.bodies import parse_json
from relay.edge.observability import logger, metrics
from relay.errors import Forbidden, InvalidRequest, RateLimited, RelayError, TooLarge, Unauthorized
from relay.flows.throttling import Throttle
from relay.models import ID_MAX_LENGTH, CamelModel, Id, InboundMessage
from relay.stores.clients import ClientStore, Credentials, bearer_token

TOKEN_REFUSALS: tuple[type[RelayError], ...] = (Unauthorized, Forbidden, InvalidRequest, TooLarge, RateLimited)
"""What the two token routes can refuse a request with."""


class TokenRequest(CamelModel):
    """The body of POST /conversations/{conversationId}/tokens."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    """The user of the browser or app the token is for; POST /messages with the token must carry this userId."""
    ttl_seconds: TokenTtl = TTL_DEFAULT_SECONDS
    """How long the token is valid (a refresh gives as long again)."""


class TokenAnswer(CamelModel):
    """A conversation token, and the stream URL it opens."""

    token: str
    conversation_id: str
    user_id: str
    expires_at: datetime
    stream_url: str
    """`new WebSocket(streamUrl)`, with `&after=<watermark>` to catch up from a watermark. It carries the token."""


class Authenticator(Protocol):
    """What Access needs of the clients table (relay.stores.clients.ClientStore)."""

    def authenticate(self, token: str) -> Credentials: ...

    def enabled(self, client_id: str) -> Credentials: ...


@dataclass(frozen=True)
class Caller:
    """The client a request acts for, and, with a conversation token, the one conversation and user it may use."""

    client_id: str
    grant: ConversationGrant | None = None

    def may_read(self, conversation_id: str) -> None:
        if self.grant is not None and conversation_id != self.grant.conversation_id:
            raise Forbidden(
                "this conversation token is for another conversation: use its own conversationId",
                field="conversationId",
            )

    def may_send(self, message: InboundMessage) -> None:
        self.may_read(message.conversation_id)
        if self.grant is not None and message.user_id != self.grant.user_id:
            raise Forbidden("this conversation token is for another user: send its own userId", field="userId")

    def client_only(self) -> None:
        if self.grant is not None:
            raise Forbidden("a conversation token cannot do this: call from your back end with its client token")


class Access:
    def __init__(self, clients: Authenticator, tokens: ConversationTokens) -> None:
        self._clients = clients
        self.tokens = tokens

    @classmethod
    def of(cls, dynamodb: Any, clients_table: str, cache_ttl_seconds: float, token_key: Callable[[], str]) -> Access:
        """Clients from their table (cached), conversation tokens signed with `token_key`."""
        return cls(ClientStore(dynamodb, clients_table, cache_ttl_seconds), ConversationTokens(token_key))

    def caller(self, headers: Mapping[str, str]) -> Caller:
        token = bearer_token(headers)
        if is_conversation_token(token):
            grant = self.grant(token)
            return Caller(grant.client_id, grant)
        return Caller(self._clients.authenticate(token).client_id)

    def grant(self, token: str) -> ConversationGrant:
        """The grant of a conversation token that is valid now, of a client that is still enabled."""
        if not is_conversation_token(token):
            raise Forbidden("a client token cannot do this: use a conversation token (POST …/tokens)")
        grant = self.tokens.read(token)
        self._clients.enabled(grant.client_id)
        return grant


class Tokens:
    def __init__(
        self,
        access: Access,
        stream_url: str,
        max_body_bytes: int,
        *,
        throttle: Throttle,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._access = access
        self._throttle = throttle
        self._max_body_bytes = max_body_bytes
        self._stream_url = stream_url
        self._clock = clock

    def mint(self, headers: Mapping[str, str], path_segment: str, body: str) -> TokenAnswer:
        """A token for the caller's conversation (`path_segment`, percent-encoded) and the body's user."""
        caller = self._access.caller(headers)
        self._throttle.take(caller.client_id)
        caller.client_only()
        request = TokenRequest.model_validate(parse_json(body, self._max_body_bytes))
        try:
            grant = ConversationGrant.starting(
                caller.client_id, unquote(path_segment), request.user_id, request.ttl_seconds, self._clock()
            )
        except ValidationError:  # the only field not validated yet
            raise InvalidRequest(
                f"conversationId must be 1 to {ID_MAX_LENGTH} characters, not all blank", field="conversationId"
            ) from None
        metrics.add_metric(name="ConversationTokenIssued", unit=MetricUnit.Count, value=1)
        logger.info("conversation token issued", extra={"client_id": caller.client_id, "ttl": request.ttl_seconds})
        return self._answer(grant)

    def refresh(self, headers: Mapping[str, str]) -> TokenAnswer:
        grant = self._access.grant(bearer_token(headers))
        self._throttle.take(grant.client_id)
        metrics.add_metric(name="ConversationTokenRefreshed", unit=MetricUnit.Count, value=1)
        return self._answer(grant.renewed(self._clock()))

    def _answer(self, grant: ConversationGrant) -> TokenAnswer:
        token = self._access.tokens.issue(grant)
        return TokenAnswer(
            token=token,
            conversation_id=grant.conversation_id,
            user_id=grant.user_id,
            expires_at=grant.expires_at,
            stream_url=f"{self._stream_url}?{urlencode({'token': token})}",
        )
