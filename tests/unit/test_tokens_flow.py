"""Conversation tokens and who a request acts for: signed, bound to one conversation and user, expiring."""

from __future__ import annotations

import base64
import json

import memory
import pytest

from relay.caller import Caller
from relay.conversation_tokens import ConversationGrant, ConversationTokens, is_conversation_token
from relay.edge.access import Access
from relay.errors import Forbidden, InvalidRequest, Unauthorized
from relay.flows.throttling import Throttle
from relay.flows.tokens import TokenRequest, Tokens
from relay.models import InboundMessage
from relay.rate_limits import DEFAULT_RATE
from relay.stores.clients import Credentials, new_token

NOW = 1_800_000_000.0


class Clients:
    def __init__(self) -> None:
        self.tokens = {"acme.secret": "acme"}
        self.disabled: set[str] = set()

    def authenticate(self, token: str) -> Credentials:
        if token not in self.tokens:
            raise Unauthorized("invalid client token")
        return self.enabled(self.tokens[token])

    def enabled(self, client_id: str) -> Credentials:
        if client_id in self.disabled:
            raise Unauthorized(f"client '{client_id}' is disabled")
        return Credentials(client_id=client_id, token_hash="x")


class Clock:
    now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> ConversationTokens:
    return ConversationTokens(lambda: "key", clock=clock)


def grant(ttl: int = 600, user: str = "alice", conversation: str = "order-42") -> ConversationGrant:
    return ConversationGrant.starting("acme", conversation, user, ttl, NOW)


def test_a_token_reads_back_as_its_grant_and_never_looks_like_a_client_token(tokens: ConversationTokens) -> None:
    token = tokens.issue(grant(conversation="ordér/42 ☃"))

    assert tokens.read(token) == grant(conversation="ordér/42 ☃")
    assert is_conversation_token(token) and not is_conversation_token(new_token("acme"))
    assert token.isascii() and " " not in token


def test_a_changed_grant_another_key_or_a_malformed_token_is_refused(tokens: ConversationTokens) -> None:
    token = tokens.issue(grant())
    body, tag = token.rsplit(".", 1)
    claims = json.loads(base64.urlsafe_b64decode(body[3:] + "=="))
    claims[2] = "mallory"
    changed = "ct_" + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + "." + tag

    for bad in (changed, ConversationTokens(lambda: "other").issue(grant()), "ct_", "ct_x.y", token + "x", "acme.x"):
        with pytest.raises(Unauthorized):
            tokens.read(bad)


def test_a_token_expires_at_its_time(tokens: ConversationTokens, clock: Clock) -> None:
    token = tokens.issue(grant(ttl=60))
    clock.now = NOW + 59
    assert tokens.read(token).user_id == "alice"

    clock.now = NOW + 60
    with pytest.raises(Unauthorized, match="expired"):
        tokens.read(token)


def test_a_conversation_token_acts_only_in_its_conversation_as_its_user(tokens: ConversationTokens) -> None:
    access = Access(Clients(), tokens)
    caller = access.caller({"Authorization": f"Bearer {tokens.issue(grant())}"})
    mine = {"userId": "alice", "messageId": "m", "conversationId": "order-42", "type": "text", "text": "hi"}

    caller.may_send(InboundMessage.model_validate(mine))
    for field, value in (("conversationId", "order-43"), ("userId", "bob")):
        with pytest.raises(Forbidden) as refused:
            caller.may_send(InboundMessage.model_validate({**mine, field: value}))
        assert refused.value.field == field
    Caller("acme").may_send(InboundMessage.model_validate({**mine, "conversationId": "order-43", "userId": "bob"}))


def test_a_route_for_one_kind_of_token_refuses_the_other_once_it_is_valid(
    tokens: ConversationTokens, clock: Clock
) -> None:
    access = Access(Clients(), tokens)
    conversation = {"Authorization": f"Bearer {tokens.issue(grant(ttl=60))}"}
    client = {"Authorization": "Bearer acme.secret"}

    assert access.client(client) == Caller("acme")
    assert access.conversation(conversation) == grant(ttl=60)
    with pytest.raises(Forbidden, match="a conversation token cannot do this"):
        access.client(conversation)
    with pytest.raises(Forbidden, match="a client token cannot do this"):
        access.conversation(client)
    clock.now = NOW + 60
    with pytest.raises(Unauthorized, match="expired"):
        access.client(conversation)  # an expired token is a 401, whatever the route


def test_refresh_renews_the_grant_for_its_ttl_from_now(tokens: ConversationTokens, clock: Clock) -> None:
    access = Access(Clients(), tokens)
    throttle = Throttle(
        memory.MemoryBuckets(memory.Clock()), memory.MemoryClients("acme"), DEFAULT_RATE, events=memory.MemoryEvents()
    )
    flow = Tokens(tokens, "wss://stream.example/live", throttle=throttle, clock=clock)
    first = flow.mint(Caller("acme"), "order/42", TokenRequest(user_id="alice", ttl_seconds=120))
    clock.now = NOW + 100

    renewed = flow.refresh(access.conversation({"authorization": f"Bearer {first.token}"}))

    assert (renewed.conversation_id, renewed.user_id) == ("order/42", "alice")
    assert renewed.expires_at.timestamp() == NOW + 100 + 120
    assert renewed.stream_url == f"wss://stream.example/live?token={renewed.token}"
    with pytest.raises(InvalidRequest, match="conversationId"):
        flow.mint(Caller("acme"), " ", TokenRequest(user_id="alice"))


def test_a_disabled_clients_tokens_are_refused(tokens: ConversationTokens) -> None:
    clients = Clients()
    token = tokens.issue(grant())
    clients.disabled.add("acme")

    with pytest.raises(Unauthorized, match="disabled"):
        Access(clients, tokens).grant(token)
