"""Who a request acts for, as the edge authenticated it (relay.edge.access) and the flows receive it."""

from __future__ import annotations

from dataclasses import dataclass

from relay.conversation_tokens import ConversationGrant
from relay.errors import Forbidden
from relay.models import InboundMessage


@dataclass(frozen=True)
class Caller:
    """The client a request acts for, and, with a conversation token, the one conversation and user it may use."""

    client_id: str
    grant: ConversationGrant | None = None

    def may_read(self, conversation_id: str) -> None:
        if self.grant is not None and conversation_id != self.grant.conversation_id:
            raise Forbidden(
                "this conversation token is for another conversation: use its own conversationId",
                field="conversationId",
            )

    def may_send(self, message: InboundMessage) -> None:
        self.may_read(message.conversation_id)
        if self.grant is not None and message.user_id != self.grant.user_id:
            raise Forbidden("this conversation token is for another user: send its own userId", field="userId")
