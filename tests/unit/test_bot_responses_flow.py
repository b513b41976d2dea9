"""POST /bot/responses/{secret} as the bot responses flow decides it: in-memory conversations and publisher."""

from __future__ import annotations

import json

import pytest
from memory import MemoryConversations, MemoryPublisher
from pydantic import ValidationError

from relay.errors import InvalidRequest, TooLarge, UnknownConversation, WrongSecret
from relay.flows.bot_responses import BotResponses
from relay.models import Conversation

SECRET = "path secret"
RESPONSE = {"type": "text", "payload": {"text": "hi"}, "conversationId": "acme:c-1", "botpressMessageId": "bp-1"}


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def flow(publisher: MemoryPublisher) -> BotResponses:
    conversations = MemoryConversations()
    conversations.record(Conversation(client_id="acme", conversation_id="c-1", user_id="alice"))
    return BotResponses(conversations, publisher, lambda: SECRET, max_body_bytes=1024)  # type: ignore[arg-type]


def test_a_response_is_published_addressed_to_its_client(flow: BotResponses, publisher: MemoryPublisher) -> None:
    receipt = flow.receive(SECRET, json.dumps(RESPONSE))

    assert receipt.status == "published"
    [published] = publisher.published
    assert (published.client_id, published.conversation_id, published.user_id) == ("acme", "c-1", "alice")
    assert (published.botpress_message_id, published.payload) == ("bp-1", {"text": "hi"})


def test_a_wrong_secret_is_refused_before_the_body_is_read(flow: BotResponses, publisher: MemoryPublisher) -> None:
    with pytest.raises(WrongSecret):
        flow.receive("not the secret", "not even json")
    assert publisher.published == []


def test_the_install_probe_is_answered_and_not_published(flow: BotResponses, publisher: MemoryPublisher) -> None:
    assert flow.receive(SECRET, '{"type":"test","payload":"test"}').status == "ok"
    assert publisher.published == []


def test_a_response_in_an_unknown_conversation_is_refused_and_not_published(
    flow: BotResponses, publisher: MemoryPublisher
) -> None:
    with pytest.raises(UnknownConversation, match="acme:other"):
        flow.receive(SECRET, json.dumps({**RESPONSE, "conversationId": "acme:other"}))
    assert publisher.published == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", InvalidRequest),
        ("{oops", InvalidRequest),
        (json.dumps({**RESPONSE, "pad": "x" * 2000}), TooLarge),
        (json.dumps({**RESPONSE, "botpressMessageId": ""}), ValidationError),
    ],
    ids=["empty", "not json", "over the limit", "a blank id"],
)
def test_an_unreadable_body_is_refused(
    flow: BotResponses, publisher: MemoryPublisher, body: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        flow.receive(SECRET, body)
    assert publisher.published == []
