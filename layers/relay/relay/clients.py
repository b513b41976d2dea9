"""Clients: their bearer tokens and their records in the clients table."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from cachetools import TTLCache

from relay import webhooks
from relay.errors import Unauthorized
from relay.models import CLIENT_ID_PATTERN, Client

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def new_token(client_id: str) -> str:
    """A bearer token: the client id, a dot and 256 random bits. Only its hash is stored."""
    return f"{client_id}.{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    # The token carries 256 random bits, so a plain SHA-256 cannot be brute-forced.
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of an `Authorization: Bearer <token>` header (any case, as Botpress sends `bearer`)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <client token>'")
    return token.strip()


class ClientStore:
    """The clients table, with records cached for a short while in a warm container."""

    def __init__(self, dynamodb: Any, table_name: str, cache_ttl_seconds: float = 60.0) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._cache: TTLCache[str, Client] = TTLCache(maxsize=1024, ttl=cache_ttl_seconds)

    def get(self, client_id: str) -> Client | None:
        if (cached := self._cache.get(client_id)) is not None:
            return cached
        item = self._dynamodb.get_item(TableName=self._table, Key={"clientId": {"S": client_id}}).get("Item")
        client = _from_item(item) if item else None
        if client is not None:
            self._cache[client_id] = client
        return client

    def authenticate(self, token: str) -> Client:
        """The enabled client this token belongs to; compared in constant time."""
        client_id, dot, _ = token.partition(".")
        # An id no client can have is not looked up: DynamoDB refuses a key over 2 KB with an error, not a miss.
        client = self.get(client_id) if dot and re.fullmatch(CLIENT_ID_PATTERN, client_id) else None
        if client is None or not hmac.compare_digest(hash_token(token), client.token_hash):
            raise Unauthorized("invalid client token")
        if not client.enabled:
            raise Unauthorized(f"client '{client.client_id}' is disabled")
        return client

    def put(self, client: Client, *, new: bool = False) -> None:
        extra = {"ConditionExpression": "attribute_not_exists(clientId)"} if new else {}
        self._dynamodb.put_item(TableName=self._table, Item=_to_item(client), **extra)
        self._cache.pop(client.client_id, None)

    def register(self, client_id: str, name: str, response_url: str | None = None) -> tuple[Client, str]:
        """Create a client with a fresh token and signing secret; the token is returned once and never stored."""
        token = new_token(client_id)
        client = Client(
            client_id=client_id,
            name=name,
            token_hash=hash_token(token),
            webhook_secret=webhooks.new_secret(),
            response_url=response_url,
        )
        self.put(client, new=True)
        return client, token

    def scan(self) -> Iterator[Client]:
        for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._table):
            yield from (_from_item(item) for item in page["Items"])


def _to_item(client: Client) -> dict[str, Any]:
    record = client.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {name: _serializer.serialize(value) for name, value in record.items()}


def _from_item(item: dict[str, Any]) -> Client:
    return Client.model_validate({name: _deserializer.deserialize(value) for name, value in item.items()})
