"""The flows as their handlers compose them from their settings, called with typed inputs as their routes read
them (no HTTP event), raising domain errors."""

from __future__ import annotations

import uuid

import pytest

from devstack.lambdas import LambdaContext
from harness import Relay, message
from relay.edge.client_api import ClientApi
from relay.errors import MessageIdReused, Unauthorized, UnknownConversation
from relay.flows.bot_responses import BotResponses
from relay.models import BotResponse, InboundMessage


def test_inbound_forwards_once_and_refuses_in_domain_words(relay: Relay) -> None:
    api: ClientApi = relay.inbound.module.api
    api.inbound.starting(LambdaContext("InboundFunction", 29))
    _, token = relay.add_client("acme")
    caller = api.access.caller({"authorization": f"Bearer {token}"})
    raw = message(message_id="m-1")
    sent = InboundMessage.model_validate(raw)

    assert api.inbound.accept(caller, sent).status == "forwarded"
    assert api.inbound.accept(caller, sent).status == "duplicate"
    with pytest.raises(MessageIdReused):
        api.inbound.accept(caller, InboundMessage.model_validate({**raw, "text": "something else"}))
    with pytest.raises(Unauthorized):
        api.access.caller({"authorization": "Bearer acme.wrong"})
    assert [m["messageId"] for m in relay.forwarded()] == ["acme:m-1"]


def test_bot_responses_publish_known_conversations_only(relay: Relay) -> None:
    bot_responses: BotResponses = relay.bot_response.module.bot_responses
    _, token = relay.add_client("acme")
    relay.post_message(token, message(conversation="c-1"))
    response = {"type": "text", "payload": {"text": "hi"}, "botpressMessageId": str(uuid.uuid4())}

    receipt = bot_responses.receive(BotResponse.model_validate({**response, "conversationId": "acme:c-1"}))

    assert receipt.status == "published"
    with pytest.raises(UnknownConversation):
        bot_responses.receive(BotResponse.model_validate({**response, "conversationId": "acme:other"}))
    assert relay.queue_depth(relay.stack.ref("DeliveryQueue")) == 1
