"""The wire formats of the relay: what clients send, what the bot receives and answers, what consumers get."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypedDict

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    model_validator,
    with_config,
)
from pydantic.alias_generators import to_camel

from relay.endpoints import EndpointState
from relay.rate_limits import Rate

ID_MAX_LENGTH = 512
"""Ids fit in keys and message attributes."""

NOT_BLANK = r"[^\x09-\x0d\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
"""Holds a character that is not white space. Spelled out, since readers of `\\s` differ: pydantic's (Rust's)
counts U+0085, ECMA-262's U+FEFF, and schemathesis reads it as ASCII only (so it fuzzed U+0085 ids as valid)."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH, pattern=NOT_BLANK)]
"""An id chosen by a client or the bot: non-blank, bounded so it fits in keys and message attributes."""

CLIENT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]
"""Ours to choose: no '.' (it ends the id in a token) and no ':' (it ends the id in a scoped id)."""

MessageType = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NOT_BLANK)]


class CamelModel(BaseModel):
    """camelCase on the wire and in DynamoDB, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        frozen=True,
        use_attribute_docstrings=True,  # the docstrings below describe the fields in openapi.yaml
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def scoped(client_id: str, id_: str) -> str:
    """An id made unique per client before it leaves for the bot."""
    return f"{client_id}:{id_}"


@with_config(ConfigDict(extra="allow"))
class Payload(TypedDict):
    """A message's payload: any object whose `text` is a string."""

    text: StrictStr


class InboundMessage(CamelModel):
    """A message from a client, as the Botpress Messaging API accepts it."""

    user_id: Id
    message_id: Id
    conversation_id: Id
    type: MessageType
    text: Annotated[str, StringConstraints(min_length=1)]
    payload: Annotated[
        Payload,
        WithJsonSchema({"type": ["object", "null"], "properties": {"text": {"type": "string"}}}),
    ] = Field(default_factory=lambda: Payload(text=""))
    """Optional: as the Botpress integration's webhook does, an absent (or null) payload becomes `{"text": text}`
    and a payload without `text` gets the text copied into it. A `text` in it must be a string: the integration
    refuses any other."""

    @model_validator(mode="before")
    @classmethod
    def _payload_carries_text(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(text := data.get("text"), str):
            return data  # field validation names what is wrong
        payload = data.get("payload")
        if payload is None:
            return {**data, "payload": {"text": text}}
        if isinstance(payload, dict) and "text" not in payload:
            return {**data, "payload": {**payload, "text": text}}
        return data


class ClientMessage(CamelModel):
    """An inbound message together with the client that sent it."""

    client_id: ClientId
    message: InboundMessage

    def for_bot(self) -> InboundMessage:
        """The message as the bot sees it: the same six fields, ids scoped to the client."""
        message = self.message
        return message.model_copy(
            update={
                "user_id": scoped(self.client_id, message.user_id),
                "message_id": scoped(self.client_id, message.message_id),
                "conversation_id": scoped(self.client_id, message.conversation_id),
            }
        )

    def conversation(self) -> Conversation:
        return Conversation(
            client_id=self.client_id,
            conversation_id=self.message.conversation_id,
            user_id=self.message.user_id,
        )


class MessageReceipt(CamelModel):
    """What a client gets back once the bot has the message (or already had it)."""

    message_id: str
    conversation_id: str
    status: Literal["forwarded", "duplicate"] = "forwarded"


class ForwardRecord(MessageReceipt):
    """The receipt as the idempotency record keeps it: with where the conversation's responses log ended when
    the message was forwarded with `?wait`, so a repeat with `?wait` answers with the responses since then."""

    log_position: int | None = None

    def receipt(self) -> MessageReceipt:
        return MessageReceipt.model_validate(self.model_dump(exclude={"log_position"}))


PublishedResponse = Annotated[dict[str, Any], WithJsonSchema({"$ref": "#/components/schemas/ClientResponse"})]
"""A ClientResponse's JSON as published, parsed: carried as it is, described as the ClientResponse it is."""


class ResponsesPage(CamelModel):
    """Responses of a conversation in the bot's order, each as a webhook delivery carries it, and the watermark
    to go on from (GET /conversations/{conversationId}/responses)."""

    responses: list[PublishedResponse]
    watermark: str


class RepliesReceipt(MessageReceipt, ResponsesPage):
    """The answer to POST /messages?wait: the receipt and the bot's responses since the forward."""


class BotResponseReceipt(CamelModel):
    """What the bot gets back: its response was published, or its install-time probe answered."""

    status: Literal["published", "ok"]


class FieldError(CamelModel):
    """One bad field of a refused request, and what is wrong with it."""

    field: str
    """The field's name on the wire, dotted for nested fields (`payload.text`); `(body)` for the whole body."""
    message: str


class ErrorBody(CamelModel):
    """The body of every refused request."""

    message: str
    """What is wrong, in a sentence."""
    errors: list[FieldError] | None = None
    """Each bad field, when the fault lies in fields."""


class Conversation(CamelModel):
    """Maps the conversation id the bot knows back to the client and its own ids."""

    client_id: ClientId
    conversation_id: str
    user_id: str

    @property
    def bot_conversation_id(self) -> str:
        return scoped(self.client_id, self.conversation_id)


class BotResponse(CamelModel):
    """One message from the bot, as the Botpress Messaging API integration posts it."""

    type: MessageType
    payload: dict[str, Any]
    conversation_id: Id
    botpress_message_id: Id
    botpress_user_id: str | None = None
    botpress_conversation_id: str | None = None


class InstallProbe(CamelModel):
    """The request the Botpress integration sends once, at install time, to check the response URL
    (relay.adapters.publisher.is_install_probe): answered, never published."""


class ClientResponse(BotResponse):
    """A bot response addressed to a client: the SNS message and the webhook body.

    The six fields of the contract, with the client's own conversation id, plus the client
    and user it belongs to.
    """

    client_id: ClientId
    user_id: str

    @classmethod
    def route(cls, response: BotResponse, conversation: Conversation) -> ClientResponse:
        return cls(
            **response.model_dump(exclude={"conversation_id"}),
            conversation_id=conversation.conversation_id,
            client_id=conversation.client_id,
            user_id=conversation.user_id,
        )

    @property
    def webhook_id(self) -> str:
        """Stable for every attempt, and across a redrive from the dead-letter queue."""
        return f"msg_{self.botpress_message_id}"


class ClientEndpoint(CamelModel):
    """What a client record says of the client and its response URL, secrets apart: what GET /client reads
    (relay.client_status.ClientProfile) as well as the whole record (Client)."""

    client_id: ClientId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    response_url: HttpUrl | None = None
    response_url_off: bool = False
    """Set when the receiver answered 410 Gone: nothing is POSTed there until an operator sets the URL again."""
    enabled: bool = True
    stopped_conversations: int = 0
    """Conversations whose delivery stopped at an undeliverable response (see relay.delivery)."""
    endpoint_state: EndpointState = EndpointState.HEALTHY
    """The response URL's breaker, as the delivery containers last wrote it (relay.endpoints)."""
    endpoint_since: datetime | None = None
    """When the endpoint began failing, while it is not healthy."""
    endpoint_open_until: datetime | None = None
    """While the breaker is open: when its next probe may go."""
    endpoint_reason: str | None = None
    """Why the breaker opened: the last failure seen."""
    endpoint_parked_at: datetime | None = None
    """When the endpoint was parked or disabled: its responses are parked once every container can know it."""
    parked_conversations: int = 0
    """Conversations with parked responses, waiting in the responses log to be delivered in order."""


class Client(ClientEndpoint):
    """A back-end application allowed to talk to the bot."""

    token_hash: str = Field(repr=False)
    webhook_secret: str = Field(repr=False)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    previous_token_hash: str | None = Field(default=None, repr=False)
    previous_token_expires_at: datetime | None = None
    previous_webhook_secret: str | None = Field(default=None, repr=False)
    previous_secret_expires_at: datetime | None = None
    rate_limit: Rate | None = None
    """The client's own rate on the client API (requests per second); none: the stack's ClientRateLimit."""

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and the previous one while its grace period after a rotation lasts."""
        return signing_secrets(self.webhook_secret, self.previous_webhook_secret, self.previous_secret_expires_at, now)


def signing_secrets(current: str, previous: str | None, expires: datetime | None, now: datetime) -> list[str]:
    """The secrets a delivery is signed with: the current one, and the previous one until `expires`."""
    return [current, *([previous] if previous and expires and now < expires else [])]


class StreamNudge(CamelModel):
    """A message of the stream queue: the conversation has something new (a response recorded, a connection
    opened); the stream function sends each of its connections what it has not had yet."""

    client_id: ClientId
    conversation_id: str
