"""POST /bot/responses/{secret} as its route (relay.edge.bot_api) and the bot responses flow decide it: in-memory
conversations and publisher."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from memory import MemoryConversations, MemoryPublisher

from relay.edge import bot_api
from relay.errors import UnknownConversation
from relay.flows.bot_responses import BotResponses
from relay.models import BotResponse, Conversation

SECRET = "path secret"
RESPONSE = {"type": "text", "payload": {"text": "hi"}, "conversationId": "acme:c-1", "botpressMessageId": "bp-1"}


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def flow(publisher: MemoryPublisher) -> BotResponses:
    conversations = MemoryConversations()
    conversations.record(Conversation(client_id="acme", conversation_id="c-1", user_id="alice"))
    return BotResponses(conversations, publisher)  # type: ignore[arg-type]


def post(flow: BotResponses, secret: str, body: str) -> tuple[int, dict[str, Any]]:
    """The route's answer (status, JSON body) to a request with `secret` in its path."""
    path = f"/bot/responses/{secret}"
    event = {
        "version": "2.0",
        "routeKey": "POST /bot/responses/{secret}",
        "rawPath": path,
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": path}, "stage": "$default"},
        "pathParameters": {"secret": secret},
        "body": body,
        "isBase64Encoded": False,
    }
    answer = bot_api.resolver(flow, lambda: SECRET, max_body_bytes=1024).resolve(event, cast(Any, None))
    return answer["statusCode"], json.loads(answer["body"])


def test_a_response_is_published_addressed_to_its_client(flow: BotResponses, publisher: MemoryPublisher) -> None:
    receipt = flow.receive(BotResponse.model_validate(RESPONSE))

    assert receipt.status == "published"
    [published] = publisher.published
    assert (published.client_id, published.conversation_id, published.user_id) == ("acme", "c-1", "alice")
    assert (published.botpress_message_id, published.payload) == ("bp-1", {"text": "hi"})


def test_a_wrong_secret_is_refused_before_the_body_is_read(flow: BotResponses, publisher: MemoryPublisher) -> None:
    status, said = post(flow, "not the secret", "not even json")

    assert (status, said["message"]) == (403, "wrong secret in the response URL: copy it again from the stack's secret")
    assert publisher.published == []


def test_the_install_probe_is_answered_and_not_published(flow: BotResponses, publisher: MemoryPublisher) -> None:
    assert post(flow, SECRET, '{"type":"test","payload":"test"}') == (200, {"status": "ok"})
    assert publisher.published == []


def test_a_response_in_an_unknown_conversation_is_refused_and_not_published(
    flow: BotResponses, publisher: MemoryPublisher
) -> None:
    with pytest.raises(UnknownConversation, match="acme:other"):
        flow.receive(BotResponse.model_validate({**RESPONSE, "conversationId": "acme:other"}))
    assert publisher.published == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("", 400),
        ("{oops", 400),
        (json.dumps({**RESPONSE, "pad": "x" * 2000}), 413),
        (json.dumps({**RESPONSE, "botpressMessageId": ""}), 422),
    ],
    ids=["empty", "not json", "over the limit", "a blank id"],
)
def test_an_unreadable_body_is_refused(flow: BotResponses, publisher: MemoryPublisher, body: str, status: int) -> None:
    assert post(flow, SECRET, body)[0] == status
    assert publisher.published == []
