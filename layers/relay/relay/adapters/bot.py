"""The bot's side of the Botpress Messaging API: where inbound messages are forwarded."""

from __future__ import annotations

import json
from collections.abc import Callable

from relay.adapters import outbound
from relay.errors import BotRefusedMessage, BotRejectedToken, BotTimeout, BotUnavailable
from relay.models import InboundMessage

REFUSED_MESSAGE_STATUSES = frozenset({400, 413, 422})
"""The bot refuses the message itself: sent again unchanged, it is refused again."""
REJECTED_TOKEN_STATUSES = frozenset({401, 403})
"""The bot refuses the relay's bot token: every message is refused until the operator fixes BotTokenSecret."""
SAID_MAX_CHARACTERS = 300
"""How much of the bot's explanation a refusal quotes."""

RETRY = "retry with the same messageId"


class BotClient:
    def __init__(self, webhook_url: str, token: Callable[[], str], timeout_seconds: float) -> None:
        self._url = webhook_url
        self._token = token
        self._timeout = timeout_seconds

    def forward(self, message: InboundMessage) -> None:
        """POST the message as the Messaging API integration's webhook expects it; raise if the bot did not take it."""
        headers = {"content-type": "application/json", "authorization": f"bearer {self._token()}"}
        try:
            answer = outbound.exchange(self._url, message.to_json(), headers, self._timeout)
        except outbound.PostFailed as failure:
            if failure.timed_out:
                raise BotTimeout(f"the bot did not answer within {self._timeout:g} s; {RETRY}") from failure
            raise BotUnavailable(f"the bot is {failure}; {RETRY}") from failure
        status = answer.status
        if 200 <= status < 300:
            return
        if status in REFUSED_MESSAGE_STATUSES:
            said = bot_said(answer.body)
            raise BotRefusedMessage(
                f"the bot refused the message (HTTP {status}{f': {said}' if said else ''});"
                " sent again unchanged it is refused again: change it"
            )
        if status in REJECTED_TOKEN_STATUSES:
            raise BotRejectedToken(
                f"the bot refused the relay's own credentials (HTTP {status}): the relay's operator must fix its"
                " bot token; until then a retry is refused too"
            )
        raise BotUnavailable(f"the bot answered HTTP {status}; {RETRY}")


def bot_said(body: bytes) -> str:
    """The bot's explanation of a refusal: the `message` of a JSON answer, or its text, shortened."""
    text = body.decode(errors="replace").strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        text = value["message"]
    text = " ".join(text.split())
    return text if len(text) <= SAID_MAX_CHARACTERS else text[: SAID_MAX_CHARACTERS - 1] + "…"
