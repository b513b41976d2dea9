"""The client API. POST /messages: may the caller send it · drop a repeated messageId · count it against the client's
rate · record the conversation · forward to the bot (· with ?wait, the bot's responses from the responses log).
GET /conversations/{conversationId}/responses: count it against the client's rate · may the caller read it · read
the conversation's responses log.
Both take a client token or a conversation token: the edge authenticates the caller (relay.edge.access) and reads
the body and query into their models (relay.edge.api). The client's rate is relay.flows.throttling's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext

from relay.adapters.bot import BotClient
from relay.caller import Caller
from relay.errors import (
    BotRefusedMessage,
    BotRejectedToken,
    BotUnavailable,
    Forbidden,
    InvalidRequest,
    MessageIdReused,
    MessageInProgress,
    RateLimited,
    RelayError,
    TooLarge,
    Unauthorized,
    UnknownConversation,
)
from relay.flows.polling import ResponsesQuery, ResponsesReader
from relay.flows.throttling import Throttle
from relay.models import ClientMessage, ForwardRecord, InboundMessage, MessageReceipt, RepliesReceipt, ResponsesPage
from relay.observability import logger, metrics
from relay.settings import InboundSettings
from relay.stores.conversations import ConversationStore

REFUSALS: tuple[type[RelayError], ...] = (
    Unauthorized,
    Forbidden,
    InvalidRequest,
    TooLarge,
    MessageInProgress,
    MessageIdReused,
    RateLimited,
    BotRefusedMessage,
    BotRejectedToken,
    BotUnavailable,
)
"""What POST /messages can refuse a request with: its handler answers these, openapi.yaml describes them."""

POLL_REFUSALS: tuple[type[RelayError], ...] = (
    Unauthorized,
    Forbidden,
    InvalidRequest,
    UnknownConversation,
    RateLimited,
)
"""What GET /conversations/{conversationId}/responses can refuse a request with."""

FORWARD_MARGIN_SECONDS = 5.0
"""Besides the bot's timeout, what a forward may take (conversation record, bot token): a crashed forward's
messageId is held (409) this much longer than the bot's timeout, not for the function's whole timeout."""

ANSWER_MARGIN_SECONDS = 1.0
"""A wait ends this long before the function's timeout, leaving time to answer."""


class ForwardDeadline:
    """The Lambda context as the idempotency record sees it: a forward's in-progress mark expires when the
    forward must have ended, so after a crash the client's retry goes through that soon."""

    def __init__(self, context: LambdaContext, forward_seconds: float) -> None:
        self._context = context  # only the remaining time is read from it
        self._forward_ms = int(forward_seconds * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return min(self._context.get_remaining_time_in_millis(), self._forward_ms)


class Inbound:
    def __init__(
        self,
        conversations: ConversationStore,
        bot: BotClient,
        repeats: BasePersistenceLayer,
        reader: ResponsesReader,
        settings: InboundSettings,
        *,
        throttle: Throttle,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._throttle = throttle
        self._conversations = conversations
        self._bot = bot
        self._reader = reader
        self._settings = settings
        self._clock = clock
        self._context: LambdaContext | None = None
        self._once = IdempotencyConfig(
            event_key_jmespath="[client_id, message.message_id]",
            payload_validation_jmespath="message",
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=_answer_repeat,
        )
        self._forward_once = idempotent_function(
            self._forward,
            data_keyword_argument="inbound",
            config=self._once,
            persistence_store=repeats,
            output_serializer=PydanticSerializer(model=ForwardRecord),
            key_prefix="forward",
        )

    def starting(self, context: LambdaContext) -> None:
        """Called at the start of each invocation."""
        self._context = context
        deadline = ForwardDeadline(context, self._settings.bot_timeout_seconds + FORWARD_MARGIN_SECONDS)
        # The idempotency utility reads only the remaining time of the context it is given.
        self._once.register_lambda_context(cast(LambdaContext, deadline))

    def accept(self, caller: Caller, message: InboundMessage, wait: float = 0) -> MessageReceipt:
        """The caller's message, forwarded once per (client, messageId); a repeat answers `duplicate`.

        With `wait` (seconds, ReplyWait), the answer also carries the responses recorded since the forward (since
        the first copy's forward for a repeat), once the bot has been quiet a moment or `wait` seconds after now.
        """
        arrived = self._clock()
        self._throttle.check(caller.client_id)  # counted only once it is known not to be a repeat: in _forward
        caller.may_send(message)
        logger.append_keys(conversation_id=message.conversation_id, message_id=message.message_id)
        metrics.add_metric(name="Accepted", unit=MetricUnit.Count, value=1)
        try:
            record: ForwardRecord = self._forward_once(
                inbound=ClientMessage(client_id=caller.client_id, message=message), wait=wait > 0
            )
        except IdempotencyAlreadyInProgressError:
            raise MessageInProgress(
                "a message with this messageId is being forwarded right now; retry shortly"
            ) from None
        except IdempotencyValidationError:
            raise MessageIdReused("messageId was already used for a different message; use a new messageId") from None
        if not wait:
            return record.receipt()
        position = record.log_position
        if position is None:  # a repeat of a message first sent without ?wait: from now on
            position = self._reader.position(caller.client_id, message.conversation_id)
        page = self._reader.replies(caller.client_id, message.conversation_id, position, self._until(arrived + wait))
        return RepliesReceipt(**record.receipt().model_dump(), **page.model_dump())

    def responses(self, caller: Caller, conversation_id: str, query: ResponsesQuery) -> ResponsesPage:
        """The caller's conversation's responses after `query.after`; with `query.wait`, held until there is one."""
        self._throttle.take(caller.client_id)
        caller.may_read(conversation_id)
        logger.append_keys(conversation_id=conversation_id)
        return self._reader.read(caller.client_id, conversation_id, query, self._until(self._clock() + query.wait))

    def _until(self, end: float) -> float:
        """`end` (a monotonic time), or earlier if the invocation would run out of time before it."""
        if self._context is None:
            return end
        left = self._context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
        return min(end, self._clock() + left)

    def _forward(self, inbound: ClientMessage, wait: bool = False) -> ForwardRecord:
        """Runs once per (client, messageId); a failure releases the messageId so the client can retry.

        Counted against the client's rate here, so that a repeat is never counted; a refusal (RateLimited) releases
        the messageId like any failure, and nothing is forwarded. With `wait`, it first notes where the
        conversation's responses log ends, to answer with what comes after.
        """
        self._throttle.take(inbound.client_id)
        self._conversations.record(inbound.conversation())
        message = inbound.message
        position = self._reader.position(inbound.client_id, message.conversation_id) if wait else None
        try:
            self._bot.forward(inbound.for_bot())
        except BotRejectedToken as error:
            # The operator's to fix (BotTokenSecret): its own metric, alarmed on.
            metrics.add_metric(name="BotRejectedToken", unit=MetricUnit.Count, value=1)
            logger.error("bot refused the relay's token", extra={"reason": error.message})
            raise
        except BotRefusedMessage as error:
            metrics.add_metric(name="BotRefusedMessage", unit=MetricUnit.Count, value=1)
            logger.info("bot refused the message", extra={"reason": error.message})
            raise
        except BotUnavailable as error:
            metrics.add_metric(name="ForwardFailed", unit=MetricUnit.Count, value=1)
            logger.warning("bot did not take the message", extra={"reason": error.message})
            raise
        metrics.add_metric(name="Forwarded", unit=MetricUnit.Count, value=1)
        logger.info("forwarded to the bot")
        return ForwardRecord(
            message_id=message.message_id, conversation_id=message.conversation_id, log_position=position
        )


def _answer_repeat(response: Any, idempotent_data: DataRecord) -> ForwardRecord:
    metrics.add_metric(name="Duplicate", unit=MetricUnit.Count, value=1)
    logger.info("repeated messageId: not forwarded again")
    return ForwardRecord.model_validate(response).model_copy(update={"status": "duplicate"})
