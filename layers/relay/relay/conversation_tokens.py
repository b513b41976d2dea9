"""Conversation tokens: what a client's back end hands one of its users' browsers or apps instead of its own token.

A token binds a client, one of its conversations, one user and an expiry. It is `ct_`, the grant as compact JSON
in URL-safe base64, a dot, and an HMAC-SHA256 over that text (a key in Secrets Manager): it is checked without a
read (the client's record, cached, says whether the client is still enabled). A client id cannot hold `_`, so a
conversation token never looks like a client token (`<client id>.<secret>`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import Field

from relay.errors import Unauthorized
from relay.models import CamelModel, ClientId, Id

PREFIX = "ct_"
TTL_MIN_SECONDS = 60
TTL_MAX_SECONDS = 86400
TTL_DEFAULT_SECONDS = 3600

TokenTtl = Annotated[int, Field(ge=TTL_MIN_SECONDS, le=TTL_MAX_SECONDS)]


class ConversationGrant(CamelModel):
    """What a conversation token allows: one user of one client, in one conversation, until it expires."""

    client_id: ClientId
    conversation_id: Id
    user_id: Id
    expires_at: datetime
    ttl_seconds: TokenTtl
    """How long the token was issued for: a refresh issues a new one for as long, from then."""

    @classmethod
    def starting(cls, client_id: str, conversation_id: str, user_id: str, ttl_seconds: int, now: float) -> Self:
        return cls(
            client_id=client_id,
            conversation_id=conversation_id,
            user_id=user_id,
            expires_at=datetime.fromtimestamp(int(now) + ttl_seconds, UTC),
            ttl_seconds=ttl_seconds,
        )

    def renewed(self, now: float) -> ConversationGrant:
        """The same grant, for its `ttl_seconds` from `now`."""
        return self.model_copy(update={"expires_at": datetime.fromtimestamp(int(now) + self.ttl_seconds, UTC)})


def is_conversation_token(token: str) -> bool:
    return token.startswith(PREFIX)


class ConversationTokens:
    def __init__(self, key: Callable[[], str], clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def issue(self, grant: ConversationGrant) -> str:
        claims = json.dumps(
            [
                grant.client_id,
                grant.conversation_id,
                grant.user_id,
                int(grant.expires_at.timestamp()),
                grant.ttl_seconds,
            ],
            separators=(",", ":"),
        )
        body = PREFIX + _encode(claims.encode())
        return f"{body}.{_encode(self._tag(body))}"

    def read(self, token: str) -> ConversationGrant:
        """The grant of a token this relay issued and that has not expired; Unauthorized otherwise."""
        body, dot, tag = token.rpartition(".")
        if not (dot and body.startswith(PREFIX)):
            raise Unauthorized("malformed conversation token: pass the `token` of a token answer as it is")
        try:
            authentic = hmac.compare_digest(_decode(tag), self._tag(body))
        except (binascii.Error, ValueError):
            authentic = False
        if not authentic:
            raise Unauthorized("invalid conversation token: it was not issued by this relay or was changed")
        client_id, conversation_id, user_id, expires, ttl = json.loads(_decode(body.removeprefix(PREFIX)))
        grant = ConversationGrant(
            client_id=client_id,
            conversation_id=conversation_id,
            user_id=user_id,
            expires_at=datetime.fromtimestamp(expires, UTC),
            ttl_seconds=ttl,
        )
        if grant.expires_at.timestamp() <= self._clock():
            raise Unauthorized("expired conversation token: get a new one from your back end")
        return grant

    def _tag(self, body: str) -> bytes:
        return hmac.new(self._key().encode(), body.encode(), hashlib.sha256).digest()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
