"""What the delivery flow is handed and what it decides: a response from the delivery queue, and what becomes of it.

The delivery queue's adapter (relay.adapters.delivery_queue) builds the queued responses from a batch and applies
the flow's decisions (relay.flows.delivery); no SQS record goes further than the adapter. Both sides import these
words from here, the domain, so neither depends on the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from relay.attempts import Trigger
from relay.models import CamelModel, ClientResponse


class ResumeParked(CamelModel):
    """A nudge on the delivery queue, in a parked conversation's message group: its endpoint is back, so its parked
    responses are delivered from the responses log, in order, before anything queued behind the nudge."""

    client_id: str
    conversation_id: str


class ProbeEndpoint(CamelModel):
    """A parked endpoint's probe on the delivery queue, one per endpoint (in a message group of its own): it comes
    back every cool-down (and less often the longer the endpoint fails) and POSTs a signed `test` delivery, so a
    receiver that is back is found even when its client sends nothing new."""

    client_id: str


def probe_body(client_id: str) -> str:
    """What a probe POSTs: a delivery of type `test` (as the Botpress integration checks a response URL at install)
    in no conversation, signed like any other."""
    return json.dumps({"type": "test", "payload": {"text": "test"}, "conversationId": "", "clientId": client_id})


TRIGGER_ATTRIBUTE = "relayTrigger"
"""The message attribute of a response put on the delivery queue again by a recover (or an operator's replay):
its attempts are recorded with that trigger. Responses from the topic carry none: their trigger is the schedule."""


@dataclass(frozen=True)
class QueuedResponse:
    """One message of a batch from the delivery queue, as the flow sees it."""

    message_id: str
    """The SQS message id: its decision is keyed by it."""
    conversation: str
    """The message group, one (client, conversation) pair: delivered in order, apart from the others."""
    body: str
    """As published, byte for byte: what is signed and POSTed, so consumers of the topic see the same."""
    response: ClientResponse | None
    """The body read as a client response; None when it is not one (it cannot be delivered, waiting won't help)."""
    resume: ResumeParked | None = None
    """Set for a nudge (its body is not a response): resume the parked conversation."""
    probe: ProbeEndpoint | None = None
    """Set for a parked endpoint's probe."""

    receive_count: int = 1
    """How many times SQS has handed the message out, this time included: 1 means it was never attempted."""
    trigger: Trigger = Trigger.SCHEDULE
    """What queued it: the topic (the schedule), or a recover (TRIGGER_ATTRIBUTE)."""


class Result(Enum):
    """What became of a response; each value is the name of its metric, as CloudWatch keeps it."""

    DELIVERED = "Delivered"
    SKIPPED = "DeliverySkipped"
    FAILED = "DeliveryFailed"
    DEAD_LETTERED = "DeadLettered"
    GONE = "ResponseUrlGone"
    HELD = "DeliveryHeld"
    PARKED = "DeliveryParked"
    RESUMED = "ParkedConversationResumed"
    PROBED = "ParkedEndpointProbed"
    NOT_ATTEMPTED = "NotAttempted"


@dataclass(frozen=True)
class Done:
    """Finished with, the queue deletes it: delivered, not for a webhook (skipped), or its receiver answered 410."""

    result: Result
    reason: str = ""


@dataclass(frozen=True)
class Retry:
    """The attempt failed: tried again in `seconds`; the rest of its conversation waits behind it."""

    seconds: int
    reason: str
    result: ClassVar[Result] = Result.FAILED


@dataclass(frozen=True)
class StopConversation:
    """The last attempt failed and the conversation is stopped here. The response is held `seconds`, until every
    container knows of the stop; the receive after that dead-letters it and the rest of its conversation."""

    seconds: int
    reason: str
    result: ClassVar[Result] = Result.FAILED


@dataclass(frozen=True)
class DeadLetter:
    """To the dead-letter queue in its conversation's order, ready for a redrive; then deleted."""

    reason: str
    result: ClassVar[Result] = Result.DEAD_LETTERED


@dataclass(frozen=True)
class Release:
    """Not attempted (time ran out, or an earlier response of its conversation failed): visible again at once."""

    reason: str
    result: ClassVar[Result] = Result.NOT_ATTEMPTED


@dataclass(frozen=True)
class Held:
    """Not POSTed, not an attempt: its endpoint's breaker is open (relay.endpoints). Back in `seconds`, and the
    rest of its conversation waits behind it."""

    seconds: int
    reason: str
    result: ClassVar[Result] = Result.HELD


type Decision = Done | Retry | StopConversation | DeadLetter | Release | Held

FAILURES = (Retry, StopConversation, Release, Held)
"""The decisions that leave a message in the queue: reported failed, so its conversation's later ones wait."""
