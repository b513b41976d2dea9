"""Errors the relay reports to a caller, each with the HTTP status that says what went wrong."""

from __future__ import annotations

from http import HTTPStatus


class RelayError(Exception):
    """A failure with a message meant for the caller; never carries a secret."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Unauthorized(RelayError):
    status = HTTPStatus.UNAUTHORIZED

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="messages"'})


class Forbidden(RelayError):
    status = HTTPStatus.FORBIDDEN


class NotFound(RelayError):
    status = HTTPStatus.NOT_FOUND


class BadRequest(RelayError):
    status = HTTPStatus.BAD_REQUEST


class PayloadTooLarge(RelayError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class Conflict(RelayError):
    status = HTTPStatus.CONFLICT


class BotUnavailable(RelayError):
    """The bot refused the message or could not be reached; the client may retry."""

    status = HTTPStatus.BAD_GATEWAY


class BotTimeout(BotUnavailable):
    status = HTTPStatus.GATEWAY_TIMEOUT
