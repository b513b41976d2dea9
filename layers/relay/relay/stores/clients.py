"""Clients: their bearer tokens and their records in the clients table."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from cachetools import TTLCache
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from relay import signing
from relay.client_status import ClientProfile
from relay.endpoints import EndpointState, ProbeClaim
from relay.errors import Unauthorized
from relay.models import CLIENT_ID_PATTERN, CamelModel, Client, signing_secrets
from relay.rate_limits import Rate

type TransactItem = dict[str, Any]
"""One item of a DynamoDB TransactWriteItems call."""

AUTH_ATTRIBUTES = ("clientId", "tokenHash", "previousTokenHash", "previousTokenExpiresAt", "enabled", "rateLimit")
"""All that authenticating a client reads from its record, its own rate with it: never its signing secret. The
client API's IAM policy allows reading only these (template.yaml, checked by a test)."""

PROFILE_ATTRIBUTES = tuple(to_camel(name) for name in ClientProfile.model_fields)
"""What self-service reads of a client's record (GET /client): never its token hashes or signing secrets."""

SIGNING_ATTRIBUTES = ("webhookSecret", "previousWebhookSecret", "previousSecretExpiresAt")
"""What signs a delivery: read by the client API only for POST /client/test. Its IAM policy allows reading these
and PROFILE_ATTRIBUTES (template.yaml, checked by a test), never the token hashes but through AUTH_ATTRIBUTES."""


class Credentials(CamelModel):
    """What a token is checked against: the client's token hashes, never its signing secret."""

    model_config = ConfigDict(extra="ignore")

    client_id: str
    token_hash: str
    previous_token_hash: str | None = None
    previous_token_expires_at: datetime | None = None
    enabled: bool = True
    rate_limit: Rate | None = None

    def accepts(self, token: str, now: datetime) -> bool:
        """The current token, or the previous one while its grace period after a rotation lasts; constant time."""
        hashed = hash_token(token)
        current = hmac.compare_digest(hashed, self.token_hash)
        previous = self.previous_token_hash is not None and hmac.compare_digest(hashed, self.previous_token_hash)
        in_grace = self.previous_token_expires_at is not None and now < self.previous_token_expires_at
        return current or (previous and in_grace)


class Rotation(BaseModel):
    """New credentials for a client: what is set, and how long the previous ones stay valid."""

    token_hash: str | None = None
    webhook_secret: str | None = None
    grace: timedelta = timedelta(hours=24)


_ENDPOINT_FIELDS = "endpointSince, endpointOpenUntil, endpointReason, endpointParkedAt"
_HEALTHY = {":healthy": {"S": EndpointState.HEALTHY}}

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
        self._credentials: TTLCache[str, Credentials] = TTLCache(maxsize=1024, ttl=cache_ttl_seconds)
        # Said for every wrong token alike, so that the answer does not tell whether the client exists.
        self._unknown_token = (
            "invalid client token (a token made by a rotation is accepted within"
            f" {cache_ttl_seconds:g} seconds of it: the time a warm function keeps a client's record)"
        )
        self._lock = threading.Lock()  # the delivery function reads clients from several threads

    def get(self, client_id: str) -> Client | None:
        with self._lock:
            cached = self._cache.get(client_id)
        if cached is not None:
            return cached
        item = self._dynamodb.get_item(TableName=self._table, Key={"clientId": {"S": client_id}}).get("Item")
        client = _from_item(item) if item else None
        if client is not None:
            with self._lock:
                self._cache[client_id] = client
        return client

    def profile(self, client_id: str) -> ClientProfile | None:
        """The client's record without its token hashes and secrets, as it is now (not cached)."""
        item = self._read(client_id, PROFILE_ATTRIBUTES)
        return ClientProfile.model_validate(_plain(item)) if item else None

    def signing(self, client_id: str, now: datetime) -> tuple[ClientProfile, list[str]] | None:
        """The client's profile and the secrets a delivery to it is signed with now."""
        item = self._read(client_id, PROFILE_ATTRIBUTES + SIGNING_ATTRIBUTES)
        if not item:
            return None
        record = _plain(item)
        secrets_ = signing_secrets(
            record["webhookSecret"],
            record.get("previousWebhookSecret"),
            datetime.fromisoformat(record["previousSecretExpiresAt"]) if "previousSecretExpiresAt" in record else None,
            now,
        )
        return ClientProfile.model_validate(record), secrets_

    def _read(self, client_id: str, attributes: tuple[str, ...]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._dynamodb.get_item(
            TableName=self._table,
            Key={"clientId": {"S": client_id}},
            ProjectionExpression=", ".join(f"#{n}" for n in range(len(attributes))),
            ExpressionAttributeNames={f"#{n}": name for n, name in enumerate(attributes)},
            ConsistentRead=True,
        ).get("Item")
        return item

    def forget(self, client_id: str) -> None:
        """Read the client's record afresh next time: it has just changed."""
        with self._lock:
            self._cache.pop(client_id, None)
            self._credentials.pop(client_id, None)

    # Operators' changes: each sets only what it changes, so two operators at once cannot undo each other.

    def rotate(self, client_id: str, rotation: Rotation, now: datetime) -> None:
        """New token and/or secret; the previous ones stay valid for the grace period (none when it is zero)."""
        sets, removes, values = [], [], {}
        until = (now + rotation.grace).isoformat()
        for new, current, previous, expires in (
            (rotation.token_hash, "tokenHash", "previousTokenHash", "previousTokenExpiresAt"),
            (rotation.webhook_secret, "webhookSecret", "previousWebhookSecret", "previousSecretExpiresAt"),
        ):
            if new is None:
                continue
            values[f":{current}"] = {"S": new}
            sets.append(f"{current} = :{current}")
            if rotation.grace > timedelta(0):
                # Evaluated on the record as it is when the update applies: the credential being replaced.
                sets += [f"{previous} = {current}", f"{expires} = :until"]
                values[":until"] = {"S": until}
            else:
                removes += [previous, expires]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self._update(client_id, expression, values)

    def set_url(self, client_id: str, url: str | None) -> None:
        """Set or remove the response URL, and switch the endpoint on (after a 410, a breaker, a park or a disable).
        Its parked conversations are then resumed by whoever called this (relay.flows.parking.resume_parked)."""
        fields = f"responseUrlOff, {_ENDPOINT_FIELDS}"
        # When it was switched on: GET /client counts no failure before it against the endpoint.
        healthy = "endpointState = :healthy, switchedOnAt = :now"
        now = {":now": {"S": datetime.now(UTC).isoformat()}, **_HEALTHY}
        if url is None:
            self._update(client_id, f"SET {healthy} REMOVE responseUrl, {fields}", now)
        else:
            values = {":url": {"S": url}, **now}
            self._update(client_id, f"SET responseUrl = :url, {healthy} REMOVE {fields}", values)

    def set_rate(self, client_id: str, rate: int | None) -> None:
        """Give the client a rate of its own on the client API, or (None) the stack's again."""
        if rate is None:
            self._update(client_id, "REMOVE rateLimit", {})
        else:
            self._update(client_id, "SET rateLimit = :rate", {":rate": {"N": str(rate)}})

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable the client; returns whether it was enabled before."""
        old = self._update(client_id, "SET enabled = :enabled", {":enabled": {"BOOL": enabled}}, "ALL_OLD")
        return bool(old.get("enabled", {}).get("BOOL", True))

    def _update(self, client_id: str, expression: str, values: dict[str, Any], returns: str = "NONE") -> dict[str, Any]:
        answer = self._dynamodb.update_item(
            TableName=self._table,
            Key={"clientId": {"S": client_id}},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(clientId)",
            **({"ExpressionAttributeValues": values} if values else {}),
            ReturnValues=returns,
        )
        self.forget(client_id)
        attributes: dict[str, Any] = answer.get("Attributes", {})
        return attributes

    def switch_off_url(self, client_id: str) -> None:
        """Stop POSTing to the client's response URL (its receiver answered 410 Gone)."""
        self._update(client_id, "SET responseUrlOff = :yes", {":yes": {"BOOL": True}})

    # The endpoint's breaker (relay.endpoints): written when it changes, never per delivery.

    def open_endpoint(self, client_id: str, since: datetime, open_until: datetime, reason: str) -> None:
        """The breaker opened: no POSTs until `open_until` from any container that reads the record."""
        self._update(
            client_id,
            "SET endpointState = :open, endpointSince = if_not_exists(endpointSince, :since),"
            " endpointOpenUntil = :until, endpointReason = :reason",
            {
                ":open": {"S": EndpointState.OPEN},
                ":since": {"S": since.isoformat()},
                ":until": {"S": open_until.isoformat()},
                ":reason": {"S": reason},
            },
        )

    def claim_probe(self, client_id: str, now: datetime, open_until: datetime) -> ProbeClaim:
        """Take the probe whose time has come, keeping the breaker open meanwhile. Not ours when another
        container took it first, or closed the breaker (its record here was stale)."""
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"clientId": {"S": client_id}},
                UpdateExpression="SET endpointOpenUntil = :until",
                # ISO 8601 in UTC, with the same offset: text order is time order.
                ConditionExpression="endpointOpenUntil <= :now",
                ExpressionAttributeValues={":until": {"S": open_until.isoformat()}, ":now": {"S": now.isoformat()}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException as refused:
            self.forget(client_id)
            old = refused.response.get("Item", {}).get("endpointOpenUntil", {}).get("S")
            return ProbeClaim(ours=False, open_until=datetime.fromisoformat(old) if old else None)
        self.forget(client_id)
        return ProbeClaim(ours=True)

    def close_endpoint(self, client_id: str) -> None:
        """A prompt success, or switched on again: the endpoint is healthy."""
        self._update(client_id, f"SET endpointState = :healthy REMOVE {_ENDPOINT_FIELDS}", _HEALTHY)

    def park_endpoint(self, client_id: str, state: EndpointState, now: datetime, reason: str) -> bool:
        """Park (or disable) the endpoint, unless it is so already or has recovered; True when this call did."""
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"clientId": {"S": client_id}},
                UpdateExpression="SET endpointState = :state, endpointParkedAt = if_not_exists(endpointParkedAt, :now),"
                " endpointReason = :reason",
                ConditionExpression="endpointState IN (:open, :parked) AND endpointState <> :state",
                ExpressionAttributeValues={
                    ":state": {"S": state},
                    ":now": {"S": now.isoformat()},
                    ":reason": {"S": reason},
                    ":open": {"S": EndpointState.OPEN},
                    ":parked": {"S": EndpointState.PARKED},
                },
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        finally:
            self.forget(client_id)
        return True

    def parked_counted(self, client_id: str) -> TransactItem:
        """The transaction item that counts one more conversation with parked responses; it fails the transaction
        once the endpoint has been switched on (a container whose cached record still says parked)."""
        item = self._count(client_id, "parkedConversations", 1)
        item["Update"]["ConditionExpression"] = "endpointState IN (:parked, :disabled)"
        item["Update"]["ExpressionAttributeValues"].update(
            {":parked": {"S": EndpointState.PARKED}, ":disabled": {"S": EndpointState.DISABLED}}
        )
        return item

    def parked_uncounted(self, client_id: str) -> TransactItem:
        return self._count(client_id, "parkedConversations", -1)

    # The count of a client's stopped conversations tells every container to look its stops up. It changes with
    # the stop itself, in the delivery state store's transaction: this store supplies its part of it.

    def stop_counted(self, client_id: str) -> TransactItem:
        """The transaction item that counts one more stopped conversation on the client's record."""
        return self._stop_count(client_id, 1)

    def stop_uncounted(self, client_id: str) -> TransactItem:
        """The transaction item that counts one stopped conversation less; it fails the transaction at zero."""
        item = self._stop_count(client_id, -1)
        item["Update"]["ConditionExpression"] = "stoppedConversations > :zero"
        item["Update"]["ExpressionAttributeValues"][":zero"] = {"N": "0"}
        return item

    def _stop_count(self, client_id: str, change: int) -> TransactItem:
        return self._count(client_id, "stoppedConversations", change)

    def _count(self, client_id: str, attribute: str, change: int) -> TransactItem:
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"clientId": {"S": client_id}},
                "UpdateExpression": f"ADD {attribute} :change",
                "ExpressionAttributeValues": {":change": {"N": str(change)}},
            }
        }

    def authenticate(self, token: str) -> Credentials:
        """The enabled client this token belongs to, read without its signing secret."""
        client_id, dot, _ = token.partition(".")
        # An id no client can have is not looked up: DynamoDB refuses a key over 2 KB with an error, not a miss.
        valid_id = dot and re.fullmatch(CLIENT_ID_PATTERN, client_id)
        credentials = self._credentials_of(client_id) if valid_id else None
        if credentials is None or not credentials.accepts(token, datetime.now(UTC)):
            raise Unauthorized(self._unknown_token)
        if not credentials.enabled:
            raise Unauthorized(f"client '{credentials.client_id}' is disabled")
        return credentials

    def enabled(self, client_id: str) -> Credentials:
        """The client a conversation token names, refused like its client token once it is disabled."""
        credentials = self._credentials_of(client_id)
        if credentials is None:
            raise Unauthorized("invalid conversation token: its client no longer exists")
        if not credentials.enabled:
            raise Unauthorized(f"client '{client_id}' is disabled")
        return credentials

    def rate_of(self, client_id: str) -> int | None:
        """The client's own rate on the client API (None: the stack's), read with its credentials and cached."""
        credentials = self._credentials_of(client_id)
        return credentials.rate_limit if credentials else None

    def _credentials_of(self, client_id: str) -> Credentials | None:
        with self._lock:
            cached = self._credentials.get(client_id)
        if cached is not None:
            return cached
        item = self._dynamodb.get_item(
            TableName=self._table,
            Key={"clientId": {"S": client_id}},
            ProjectionExpression=", ".join(f"#{n}" for n in range(len(AUTH_ATTRIBUTES))),
            ExpressionAttributeNames={f"#{n}": name for n, name in enumerate(AUTH_ATTRIBUTES)},
        ).get("Item")
        if not item:
            return None
        credentials = Credentials.model_validate(_plain(item))
        with self._lock:
            self._credentials[client_id] = credentials
        return credentials

    def put(self, client: Client, *, new: bool = False) -> None:
        extra = {"ConditionExpression": "attribute_not_exists(clientId)"} if new else {}
        self._dynamodb.put_item(TableName=self._table, Item=_to_item(client), **extra)
        self.forget(client.client_id)

    def register(self, client_id: str, name: str, response_url: str | None = None) -> tuple[Client, str]:
        """Create a client with a fresh token and signing secret; the token is returned once and never stored."""
        token = new_token(client_id)
        client = Client(
            client_id=client_id,
            name=name,
            token_hash=hash_token(token),
            webhook_secret=signing.new_secret(),
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


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _from_item(item: dict[str, Any]) -> Client:
    return Client.model_validate(_plain(item))
