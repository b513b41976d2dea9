"""What the two HTTP functions share: the resolver, its error answers and reading a request body."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from pydantic import ValidationError

from relay.errors import BadRequest, PayloadTooLarge, RelayError

logger = Logger(child=True)


def error_response(status: HTTPStatus, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"message": message, **extra}),
        headers=headers,
    )


def create_resolver() -> APIGatewayHttpResolver:
    """An HTTP API resolver that answers every failure with a JSON body saying what is wrong."""
    app = APIGatewayHttpResolver()

    @app.exception_handler(RelayError)
    def relay_error(error: RelayError) -> Response:
        logger.info("request refused", extra={"status": int(error.status), "reason": error.message})
        return error_response(error.status, error.message, error.headers)

    @app.exception_handler(ValidationError)
    def invalid_body(error: ValidationError) -> Response:
        problems = [
            {"field": ".".join(str(part) for part in problem["loc"]) or "(body)", "message": problem["msg"]}
            for problem in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        logger.info("request refused", extra={"status": 422, "reason": summary})
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, f"invalid body: {summary}", errors=problems)

    @app.exception_handler(IdempotencyAlreadyInProgressError)
    def in_progress(_: IdempotencyAlreadyInProgressError) -> Response:
        return error_response(
            HTTPStatus.CONFLICT,
            "a message with this messageId is being forwarded right now; retry shortly",
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(IdempotencyValidationError)
    def reused_id(_: IdempotencyValidationError) -> Response:
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "messageId was already used for a different message; use a new messageId",
            errors=[{"field": "messageId", "message": "already used for a different message"}],
        )

    @app.not_found
    def no_route(_: Exception) -> Response:
        return error_response(HTTPStatus.NOT_FOUND, "no such route")

    return app


def read_body(event: APIGatewayProxyEventV2, max_bytes: int) -> str:
    """The request body as text, refused when over `max_bytes` or when it is not UTF-8 JSON text."""
    try:
        body = event.decoded_body or ""
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8 text; send a JSON object") from None
    size = len(body.encode())
    if size > max_bytes:
        raise PayloadTooLarge(f"body is {size} bytes; the limit is {max_bytes} bytes")
    if not body.strip():
        raise BadRequest("body is empty; send a JSON object")
    return body


def parse_json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise BadRequest(f"body is not valid JSON: {error}") from None
