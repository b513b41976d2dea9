"""What can go wrong, in the relay's own words. Nothing here knows HTTP: relay.edge.api maps each kind to a status."""

from __future__ import annotations

from relay.rate_limits import Verdict


class RelayError(Exception):
    """A failure with a message meant for the caller; never carries a secret."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(RelayError):
    """No valid client token, or the client is disabled."""


class Forbidden(RelayError):
    """A valid token used beyond what it grants: a conversation token for another conversation, user or route."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class WrongSecret(RelayError):
    """The bot's response URL does not carry the stack's path secret."""


class InvalidRequest(RelayError):
    """The request cannot be read: its body is empty, not UTF-8, not JSON, nested too deeply, holds a key twice
    in one object or a lone surrogate, or a parameter is malformed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TooLarge(RelayError):
    """The request or the response it would publish is over a size limit."""


class NoResponseUrl(RelayError):
    """The client has no response URL to deliver to: set one first."""


class UnknownConversation(RelayError):
    """The conversation was never sent through this relay (or not by this client)."""


class MessageInProgress(RelayError):
    """The same messageId is being forwarded right now; the caller may retry shortly."""

    retry_after_seconds = 2


class MessageIdReused(RelayError):
    """A messageId already used for a different message."""


class RateLimited(RelayError):
    """The client is over its rate on the client API (its own, or the stack's ClientRateLimit); nothing was done
    and nothing counted: retry after `Retry-After` seconds. No other client is affected."""

    def __init__(self, message: str, verdict: Verdict) -> None:
        super().__init__(message)
        self.verdict = verdict


class BotUnavailable(RelayError):
    """The bot could not be reached or failed for now (5xx, 408, 429); the client may retry."""


class BotTimeout(BotUnavailable):
    """The bot did not answer within its timeout; it may have the message already."""


class BotRefusedMessage(RelayError):
    """The bot refused the message itself (400, 422): the same message would be refused again."""


class BotRejectedToken(RelayError):
    """The bot refused the relay's own credentials (401, 403): the operator's BotTokenSecret is wrong. No message
    gets through until it is fixed; not the client's to fix."""
