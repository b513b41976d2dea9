"""Bot responses: from the bot's request to a message on the responses topic."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from relay.errors import TooLarge
from relay.models import ClientResponse

SNS_MAX_BYTES = 256 * 1024


def is_install_probe(body: object) -> bool:
    """The request the Botpress integration sends once, at install time, to check the response URL."""
    return isinstance(body, dict) and body.get("type") == "test" and body.get("payload") == "test"


def _fifo_id(value: str) -> str:
    # Group and deduplication ids allow 128 characters of a limited set; a digest always fits.
    return hashlib.sha256(value.encode()).hexdigest()


def message_group_id(client_id: str, conversation_id: str) -> str:
    """A conversation's SNS/SQS message group: its responses are handed to each consumer in order."""
    return _fifo_id(json.dumps([client_id, conversation_id]))


def endpoint_group_id(client_id: str) -> str:
    """The message group of a client's endpoint probes on the delivery queue: apart from every conversation's."""
    return _fifo_id(json.dumps([client_id]))


def routing_attributes(response: ClientResponse) -> dict[str, str]:
    """The message attributes a subscriber's filter policy selects on."""
    return {
        "clientId": response.client_id,
        "conversationId": response.conversation_id,
        "userId": response.user_id,
        "type": response.type,
    }


def message_attributes(response: ClientResponse) -> dict[str, dict[str, str]]:
    return {name: {"DataType": "String", "StringValue": value} for name, value in routing_attributes(response).items()}


class ResponsePublisher:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, response: ClientResponse) -> None:
        """Publish in the conversation's message group, so its consumers get its responses in order."""
        attributes = routing_attributes(response)
        body = response.to_json()
        # SNS counts the message and its attributes' names, types and values against its limit.
        size = len(body.encode()) + sum(len(f"{name}String{value}".encode()) for name, value in attributes.items())
        if size > SNS_MAX_BYTES:
            raise TooLarge(f"the response is {size} bytes with its routing fields; SNS takes {SNS_MAX_BYTES}")
        self._sns.publish(
            TopicArn=self._topic_arn,
            Message=body,
            MessageGroupId=message_group_id(response.client_id, response.conversation_id),
            MessageDeduplicationId=_fifo_id(response.botpress_message_id),
            MessageAttributes=message_attributes(response),
        )
