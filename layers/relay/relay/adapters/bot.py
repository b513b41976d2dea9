"""The bot's side of the Botpress Messaging API: where inbound messages are forwarded."""

from __future__ import annotations

from collections.abc import Callable

from relay.adapters import outbound
from relay.errors import BotTimeout, BotUnavailable
from relay.models import InboundMessage


class BotClient:
    def __init__(self, webhook_url: str, token: Callable[[], str], timeout_seconds: float) -> None:
        self._url = webhook_url
        self._token = token
        self._timeout = timeout_seconds

    def forward(self, message: InboundMessage) -> None:
        """POST the message as the Messaging API integration's webhook expects it; raise if the bot did not take it."""
        headers = {"content-type": "application/json", "authorization": f"bearer {self._token()}"}
        try:
            status = outbound.post(self._url, message.to_json(), headers, self._timeout)
        except outbound.PostFailed as failure:
            if failure.timed_out:
                raise BotTimeout(
                    f"the bot did not answer within {self._timeout:g} s; retry with the same messageId"
                ) from failure
            raise BotUnavailable(f"the bot is {failure}; retry with the same messageId") from failure
        if not 200 <= status < 300:
            raise BotUnavailable(f"the bot answered HTTP {status}; retry with the same messageId")
