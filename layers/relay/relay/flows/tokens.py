"""Conversation tokens, for the caller the edge authenticated (relay.edge.access).

POST /conversations/{conversationId}/tokens: client token · counted against the client's rate · a token for that
conversation and a user.
POST /tokens/refresh: conversation token, not expired · counted against its client's rate · a new one for the same
grant, from now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlencode

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ConfigDict, ValidationError

from relay.caller import Caller
from relay.conversation_tokens import TTL_DEFAULT_SECONDS, ConversationGrant, ConversationTokens, TokenTtl
from relay.errors import Forbidden, InvalidRequest, RateLimited, RelayError, TooLarge, Unauthorized
from relay.flows.throttling import Throttle
from relay.models import ID_MAX_LENGTH, CamelModel, Id
from relay.observability import logger, metrics

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


class Tokens:
    def __init__(
        self,
        tokens: ConversationTokens,
        stream_url: str,
        *,
        throttle: Throttle,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = tokens
        self._throttle = throttle
        self._stream_url = stream_url
        self._clock = clock

    def mint(self, caller: Caller, conversation_id: str, request: TokenRequest) -> TokenAnswer:
        """A token for the caller's conversation (the path's, decoded) and the request's user."""
        self._throttle.take(caller.client_id)
        try:
            grant = ConversationGrant.starting(
                caller.client_id, conversation_id, request.user_id, request.ttl_seconds, self._clock()
            )
        except ValidationError:  # the only field not validated yet
            raise InvalidRequest(
                f"conversationId must be 1 to {ID_MAX_LENGTH} characters, not all blank", field="conversationId"
            ) from None
        metrics.add_metric(name="ConversationTokenIssued", unit=MetricUnit.Count, value=1)
        logger.info("conversation token issued", extra={"client_id": caller.client_id, "ttl": request.ttl_seconds})
        return self._answer(grant)

    def refresh(self, grant: ConversationGrant) -> TokenAnswer:
        """A new token for the grant of a conversation token that is valid now."""
        self._throttle.take(grant.client_id)
        metrics.add_metric(name="ConversationTokenRefreshed", unit=MetricUnit.Count, value=1)
        return self._answer(grant.renewed(self._clock()))

    def _answer(self, grant: ConversationGrant) -> TokenAnswer:
        token = self._tokens.issue(grant)
        return TokenAnswer(
            token=token,
            conversation_id=grant.conversation_id,
            user_id=grant.user_id,
            expires_at=grant.expires_at,
            stream_url=f"{self._stream_url}?{urlencode({'token': token})}",
        )
