"""The HTTP edge of the two API functions: a request's body and query read into the flows' models, and the one
place where what went wrong becomes a status and a JSON body."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from relay import errors
from relay.edge.bodies import parse_json
from relay.errors import RelayError
from relay.models import NOT_BLANK, ErrorBody, FieldError
from relay.observability import logger
from relay.rate_limits import Verdict

STATUS: dict[type[RelayError], HTTPStatus] = {
    errors.Unauthorized: HTTPStatus.UNAUTHORIZED,
    errors.Forbidden: HTTPStatus.FORBIDDEN,
    errors.WrongSecret: HTTPStatus.FORBIDDEN,
    errors.InvalidRequest: HTTPStatus.BAD_REQUEST,
    errors.TooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    errors.UnknownConversation: HTTPStatus.NOT_FOUND,
    errors.NoResponseUrl: HTTPStatus.CONFLICT,
    errors.MessageInProgress: HTTPStatus.CONFLICT,
    errors.MessageIdReused: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.RateLimited: HTTPStatus.TOO_MANY_REQUESTS,
    errors.BotTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    errors.BotUnavailable: HTTPStatus.BAD_GATEWAY,
    errors.BotRefusedMessage: HTTPStatus.UNPROCESSABLE_ENTITY,
    # Neither 502 (retry now) nor 500 (a crash): the relay cannot serve anyone until its operator acts.
    errors.BotRejectedToken: HTTPStatus.SERVICE_UNAVAILABLE,
}
"""Every error kind the API can answer with, and its status. A kind not here is a bug: it answers 500."""


def error_response(
    status: HTTPStatus,
    message: str,
    headers: dict[str, str] | None = None,
    problems: list[FieldError] | None = None,
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=ErrorBody(message=message, errors=problems).to_json(),
        headers=headers,
    )


def status_of(error: RelayError) -> HTTPStatus:
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def answer(error: RelayError) -> Response[str]:
    """The HTTP answer to a refused request: its status, a JSON body saying what is wrong, and helpful headers."""
    status = status_of(error)
    headers: dict[str, str] = {}
    problems: list[FieldError] | None = None
    if isinstance(error, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="messages"'
    if isinstance(error, errors.MessageInProgress):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, errors.RateLimited):
        headers.update(rate_limit_headers(error.verdict))
    if isinstance(error, errors.MessageIdReused):
        problems = [FieldError(field="messageId", message="already used for a different message")]
    if isinstance(error, errors.InvalidRequest | errors.Forbidden) and error.field:
        problems = [FieldError(field=error.field, message=error.message)]
    logger.info("request refused", extra={"status": int(status), "reason": error.message})
    return error_response(status, error.message, headers, problems)


def rate_limit_headers(verdict: Verdict) -> dict[str, str]:
    """What a client over its rate is told: when to retry, its burst, what is left of it, when it is full again."""
    return {
        "Retry-After": str(verdict.retry_after_seconds),
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(verdict.remaining),
        "RateLimit-Reset": str(verdict.reset_seconds),
    }


def socket_refusal(error: RelayError) -> dict[str, Any]:
    """A refused WebSocket $connect: the handshake is answered with the error's status, and no upgrade."""
    status = status_of(error)
    logger.info("connection refused", extra={"status": int(status), "reason": error.message})
    body = ErrorBody(message=error.message).to_json()
    return {"statusCode": int(status), "headers": {"content-type": content_types.APPLICATION_JSON}, "body": body}


def invalid_body(error: ValidationError) -> Response[str]:
    """422, naming each field that is missing or wrong."""
    problems = [
        FieldError(field=".".join(str(part) for part in problem["loc"]) or "(body)", message=_said(problem))
        for problem in error.errors(include_url=False, include_input=False)
    ]
    summary = "; ".join(f"{p.field}: {p.message}" for p in problems)
    logger.info("request refused", extra={"status": 422, "reason": summary})
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, f"invalid body: {summary}", problems=problems)


def _said(problem: ErrorDetails) -> str:
    """Pydantic's message, but for a blank string, whose pattern says nothing to a reader."""
    if problem["type"] == "string_pattern_mismatch" and problem.get("ctx", {}).get("pattern") == NOT_BLANK:
        return "String should not be blank (white space only)"
    return problem["msg"]


def no_route(_: Exception) -> Response[str]:
    return error_response(HTTPStatus.NOT_FOUND, "no such route")


def browser_cors(origins: tuple[str, ...]) -> CORSConfig | None:
    """CORS for pages of these origins (none: no CORS). A route a browser may not call says `cors=False`."""
    if not origins:
        return None
    first, *others = origins
    exposed = ["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]
    return CORSConfig(allow_origin=first, extra_origins=others, expose_headers=exposed, max_age=600)


class _Resolver(APIGatewayHttpResolver):
    """Powertools keeps the event being resolved on its router class, shared by every resolver of the process. Lambda
    runs one invocation per process, but the tests' harness runs the functions side by side in one (a bot answering
    while a client waits): there each thread reads the event it is resolving."""

    _resolving = threading.local()

    @property  # type: ignore[override]
    def current_event(self) -> APIGatewayProxyEventV2:
        event: APIGatewayProxyEventV2 = self._resolving.event
        return event

    @current_event.setter
    def current_event(self, event: APIGatewayProxyEventV2) -> None:
        self._resolving.event = event

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        self._resolving.event = self._to_proxy_event(dict(event))
        return super().resolve(event, context)


def create_resolver(*refusals: type[RelayError], cors: CORSConfig | None = None) -> APIGatewayHttpResolver:
    """An HTTP API resolver answering each of `refusals` (the errors this function can raise), invalid bodies
    and unknown routes with a JSON body saying what is wrong; with `cors`, the preflights of its routes too."""
    unknown = [kind.__name__ for kind in refusals if not any(k in STATUS for k in kind.__mro__)]
    if unknown:
        raise ValueError(f"no HTTP status for {', '.join(unknown)}: add it to relay.edge.api.STATUS")
    app = _Resolver(cors=cors)
    app.exception_handler(list(refusals))(answer)
    app.exception_handler(ValidationError)(invalid_body)
    app.not_found(no_route)
    return app


def request_body(event: APIGatewayProxyEventV2) -> str:
    """The request body as text, decoded from base64 if API Gateway encoded it; refused when it is not UTF-8."""
    try:
        return event.decoded_body or ""
    except UnicodeDecodeError:
        raise errors.InvalidRequest("body is not UTF-8 text; send a JSON object") from None


def read_json(event: APIGatewayProxyEventV2, max_bytes: int) -> Any:
    """The request body's JSON value, read as relay.edge.bodies.parse_json checks it."""
    return parse_json(request_body(event), max_bytes)


def read_body[Body: BaseModel](model: type[Body], event: APIGatewayProxyEventV2, max_bytes: int) -> Body:
    """The request body as `model`: 400 or 413 when it is no JSON to read, 422 naming each field that is wrong."""
    return model.model_validate(read_json(event, max_bytes))


def read_optional_body[Body: BaseModel](model: type[Body], event: APIGatewayProxyEventV2, max_bytes: int) -> Body:
    """As read_body, but no body at all (or white space) is the model's defaults."""
    if not request_body(event).strip():
        return model()
    return read_body(model, event, max_bytes)


def read_query[Query: BaseModel](model: type[Query], event: APIGatewayProxyEventV2) -> Query:
    """The query parameters as `model`; a bad one is a 400 naming it."""
    try:
        return model.model_validate(event.query_string_parameters or {})
    except ValidationError as error:
        problems = [(str(problem["loc"][0]), problem["msg"]) for problem in error.errors(include_url=False)]
        message = "; ".join(f"query parameter {name}: {text}" for name, text in problems)
        raise errors.InvalidRequest(message, field=problems[0][0]) from None
