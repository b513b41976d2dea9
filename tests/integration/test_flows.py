"""The flows as their handlers compose them from their settings, called with a request's parts (no HTTP event),
raising domain errors."""

from __future__ import annotations

import json
import uuid

import pytest

from devstack.lambdas import LambdaContext
from harness import Relay, message
from relay.errors import MessageIdReused, Unauthorized, UnknownConversation, WrongSecret
from relay.flows.bot_responses import BotResponses
from relay.flows.inbound import Inbound


def test_inbound_forwards_once_and_refuses_in_domain_words(relay: Relay) -> None:
    inbound: Inbound = relay.inbound.module.inbound
    inbound.starting(LambdaContext("InboundFunction", 29))
    _, token = relay.add_client("acme")
    headers = {"authorization": f"Bearer {token}"}
    sent = message(message_id="m-1")

    assert inbound.accept(headers, json.dumps(sent)).status == "forwarded"
    assert inbound.accept(headers, json.dumps(sent)).status == "duplicate"
    with pytest.raises(MessageIdReused):
        inbound.accept(headers, json.dumps({**sent, "text": "something else"}))
    with pytest.raises(Unauthorized):
        inbound.accept({"authorization": "Bearer acme.wrong"}, json.dumps(message()))
    assert [m["messageId"] for m in relay.forwarded()] == ["acme:m-1"]


def test_bot_responses_publish_known_conversations_only(relay: Relay) -> None:
    bot_responses: BotResponses = relay.bot_response.module.bot_responses
    _, token = relay.add_client("acme")
    relay.post_message(token, message(conversation="c-1"))
    response = {"type": "text", "payload": {"text": "hi"}, "botpressMessageId": str(uuid.uuid4())}

    receipt = bot_responses.receive(relay.bot_secret, json.dumps({**response, "conversationId": "acme:c-1"}))

    assert receipt.status == "published"
    with pytest.raises(UnknownConversation):
        bot_responses.receive(relay.bot_secret, json.dumps({**response, "conversationId": "acme:other"}))
    with pytest.raises(WrongSecret):
        bot_responses.receive("not-the-secret", json.dumps({**response, "conversationId": "acme:c-1"}))
    assert relay.queue_depth(relay.stack.ref("DeliveryQueue")) == 1
