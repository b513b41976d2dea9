"""Who is calling: a request's bearer token is a client token (the client's back end, anything of its own) or a
conversation token (a browser or app: one conversation as one user, on the routes a browser needs). Each route
says which it takes: `caller` either, `client` a client token only, `conversation` a conversation token only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from relay.caller import Caller
from relay.conversation_tokens import ConversationGrant, ConversationTokens, is_conversation_token
from relay.errors import Forbidden
from relay.observability import logger
from relay.stores.clients import ClientStore, Credentials, bearer_token


class Authenticator(Protocol):
    """What Access needs of the clients table (relay.stores.clients.ClientStore)."""

    def authenticate(self, token: str) -> Credentials: ...

    def enabled(self, client_id: str) -> Credentials: ...


class Access:
    def __init__(self, clients: Authenticator, tokens: ConversationTokens) -> None:
        self._clients = clients
        self._tokens = tokens

    @classmethod
    def of(cls, dynamodb: Any, clients_table: str, cache_ttl_seconds: float, token_key: Callable[[], str]) -> Access:
        """Clients from their table (cached), conversation tokens signed with `token_key`."""
        return cls(ClientStore(dynamodb, clients_table, cache_ttl_seconds), ConversationTokens(token_key))

    def caller(self, headers: Mapping[str, str]) -> Caller:
        """The caller of a route that takes either token."""
        token = bearer_token(headers)
        if is_conversation_token(token):
            grant = self.grant(token)
            return Caller(grant.client_id, grant)
        client_id = self._clients.authenticate(token).client_id
        logger.append_keys(client_id=client_id)  # every log line of the request names its client
        return Caller(client_id)

    def client(self, headers: Mapping[str, str]) -> Caller:
        """The caller of a route for a client's back end only: a valid conversation token is refused (403)."""
        caller = self.caller(headers)
        if caller.grant is not None:
            raise Forbidden("a conversation token cannot do this: call from your back end with its client token")
        return caller

    def conversation(self, headers: Mapping[str, str]) -> ConversationGrant:
        """The grant of a route for a conversation token only: a client token is refused (403)."""
        return self.grant(bearer_token(headers))

    def grant(self, token: str) -> ConversationGrant:
        """The grant of a conversation token that is valid now, of a client that is still enabled."""
        if not is_conversation_token(token):
            raise Forbidden("a client token cannot do this: use a conversation token (POST …/tokens)")
        grant = self._tokens.read(token)
        self._clients.enabled(grant.client_id)
        logger.append_keys(client_id=grant.client_id)
        return grant
