"""A message goes to the bot; the bot's responses come back to the client's receiver, signed and in order."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from harness import BOT_TOKEN, Relay, message


def deliveries(receiver: HTTPServer) -> list[tuple[dict[str, str], bytes]]:
    return [(dict(request.headers), request.get_data()) for request, _ in receiver.log]


def test_message_is_forwarded_in_botpress_format_with_the_bot_token(relay: Relay) -> None:
    _, token = relay.add_client("acme")
    sent = message(conversation="order-42", message_id="m-1", userId="alice", payload={"text": "hello", "x": 1})

    response = relay.post_message(token, sent)

    assert response.status == 200, response.text
    assert response.json() == {"messageId": "m-1", "conversationId": "order-42", "status": "forwarded"}
    ((request, _),) = relay.bot.log
    assert request.headers["Authorization"] == f"bearer {BOT_TOKEN}"
    assert json.loads(request.get_data()) == {
        "userId": "acme:alice",
        "messageId": "acme:m-1",
        "conversationId": "acme:order-42",
        "type": "text",
        "text": "hello",
        "payload": {"text": "hello", "x": 1},
    }


@pytest.mark.parametrize("count", [0, 1, 5])
def test_bot_responses_reach_the_receiver_signed_in_order(relay: Relay, receiver: HTTPServer, count: int) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    relay.post_message(token, message(conversation="order-42", userId="alice", text="where is my order?"))
    (forwarded,) = relay.forwarded()

    replies = relay.reply(forwarded, count)
    relay.drain()

    received = deliveries(receiver)
    assert len(received) == count
    verifier = Webhook(client.webhook_secret)
    for (headers, body), reply in zip(received, replies, strict=True):
        delivered = verifier.verify(body, headers)  # raises unless the signature and timestamp hold
        assert delivered == {
            "type": "text",
            "payload": reply["payload"],
            "conversationId": "order-42",
            "userId": "alice",
            "clientId": "acme",
            "botpressUserId": "bp-user-1",
            "botpressMessageId": reply["botpressMessageId"],
            "botpressConversationId": "bp-conv-1",
        }
        assert headers["Webhook-Id"] == f"msg_{reply['botpressMessageId']}"


def test_a_forged_signature_fails_verification(relay: Relay, receiver: HTTPServer) -> None:
    """The check above is not vacuous: a body altered on the way is refused by the reference library."""
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    client, token = relay.add_client("acme", response_url=receiver.url_for("/hook"))
    relay.post_message(token, message())
    relay.reply(relay.forwarded()[0])
    relay.drain()

    ((headers, body),) = deliveries(receiver)
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(client.webhook_secret).verify(body.replace(b"reply 1", b"reply 2"), headers)
