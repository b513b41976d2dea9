"""openapi.yaml, generated from the relay's own models, refusals and status mapping: `make openapi` writes it.

Powertools can describe a route only when its validation middleware injects the body as a parameter, which
would replace the relay's own body checks (size, depth, lone surrogates) and error answers; so the description
is built here from the same pydantic models, refusal lists and `relay.edge.api.STATUS` the handlers use, and a test
fails when the committed file drifts from them. Adding a route is one `Operation` in OPERATIONS.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from relay import errors
from relay.attempts import Attempt, AttemptsPage, DeliveriesQuery
from relay.client_status import ClientStatus
from relay.edge.api import STATUS
from relay.edge.bodies import MAX_JSON_DEPTH
from relay.errors import RelayError
from relay.flows import bot_responses, inbound, self_service, tokens
from relay.flows.polling import ReplyWait, ResponsesQuery
from relay.models import (
    BotResponse,
    BotResponseReceipt,
    ClientResponse,
    ErrorBody,
    Id,
    InboundMessage,
    MessageReceipt,
    RepliesReceipt,
    ResponsesPage,
)
from relay.operations import EVENTS
from relay.settings import InboundSettings

MAX_BODY_BYTES = InboundSettings.model_fields["max_body_bytes"].default
REF = "#/components/schemas/{model}"
JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    method: Literal["get", "post", "put"]
    path: str
    summary: str
    description: str
    refusals: tuple[type[RelayError], ...]
    answer: type[BaseModel]
    answer_example: dict[str, Any]
    body: type[BaseModel] | None = None
    body_example: dict[str, Any] | None = None
    body_or: dict[str, Any] | None = None
    """Another body taken besides `body`'s model, as a JSON schema."""
    body_required: bool = True
    """False: no body at all is taken too, as the model's defaults."""
    answer_or: type[BaseModel] | None = None
    """Another answer besides `answer`'s model (depending on the query); tried first, as generated clients try
    the variants of `anyOf` in order and `answer`'s model takes extra fields: so it must have required fields
    that `answer` lacks."""
    client_token: bool = True
    """Authenticated with the client's bearer token; otherwise by what its path parameters say."""
    conversation_token: bool = False
    """Also (or only, without `client_token`) with a conversation token; CORS for BrowserOrigins."""
    parameters: list[dict[str, Any]] = field(default_factory=list)
    query: type[BaseModel] | None = None
    """The model the flow reads the query string into: each field becomes a query parameter."""


CONVERSATION_ID = {
    "name": "conversationId",
    "in": "path",
    "required": True,
    "description": "The client's own conversation id, percent-encoded.",
    "schema": TypeAdapter(Id).json_schema(),  # decoded, what a conversationId in a body must be
}

TOKEN_ANSWER_EXAMPLE = {
    "token": "ct_WyJhY21lIiwiY29udmVyc2F0aW9uLTQyIiwidXNlci03IiwxNzk2MjQ4MDAwLDM2MDBd.3q2-7w",
    "conversationId": "conversation-42",
    "userId": "user-7",
    "expiresAt": "2026-12-02T21:00:00Z",
    "streamUrl": "wss://abcdef1234.execute-api.eu-west-1.amazonaws.com/live?token=ct_WyJhY21lIiwi…",
}

OPERATIONS = [
    Operation(
        "post",
        "/messages",
        "Send a message to the bot",
        "The Botpress Messaging API's message, forwarded to the bot once per `messageId`: a repeated `messageId` "
        "answers 200 with `status: duplicate` and is not forwarded again. The bot's responses arrive at the "
        "client's response URL (signed, Standard Webhooks) and on the responses topic. With `wait`, the answer "
        "also carries the bot's responses recorded since the forward, once the bot has been quiet for a second "
        "or `wait` seconds after the request came, and the watermark to go on from with GET "
        "/conversations/{conversationId}/responses.",
        inbound.REFUSALS,
        MessageReceipt,
        {"messageId": "m-1001", "conversationId": "conversation-42", "status": "forwarded"},
        InboundMessage,
        {
            "userId": "user-7",
            "messageId": "m-1001",
            "conversationId": "conversation-42",
            "type": "text",
            "text": "Where is my order?",
        },
        answer_or=RepliesReceipt,
        query=ReplyWait,
        conversation_token=True,
    ),
    Operation(
        "post",
        "/bot/responses/{secret}",
        "A bot message for a client (the bot's Response Endpoint URL)",
        "One bot message per request, as the Botpress Messaging API integration posts it; published to the "
        'responses topic for the client whose conversation it is. The install-time probe `{"type": "test", '
        '"payload": "test"}` answers `status: ok` and is not published.',
        bot_responses.REFUSALS,
        BotResponseReceipt,
        {"status": "published"},
        BotResponse,
        {
            "type": "text",
            "payload": {"text": "It left the warehouse this morning."},
            "conversationId": "acme:conversation-42",
            "botpressUserId": "bp-user-1",
            "botpressMessageId": "bp-message-1",
            "botpressConversationId": "bp-conversation-1",
        },
        body_or={
            "description": "The integration's install-time probe of the response URL: answered, never published.",
            "type": "object",
            "properties": {"type": {"const": "test"}, "payload": {"const": "test"}},
            "required": ["type", "payload"],
        },
        client_token=False,
        parameters=[
            {
                "name": "secret",
                "in": "path",
                "required": True,
                "description": "The stack's bot-response secret (in Secrets Manager); a wrong one is refused with "
                "403 and nothing is published. OpenAPI has no security scheme for a secret in the path.",
                "schema": {"type": "string"},
            }
        ],
    ),
    Operation(
        "get",
        "/conversations/{conversationId}/responses",
        "Read a conversation's bot responses after a watermark (polling, long polling)",
        "The responses of one of the client's conversations, in the bot's order, each as a webhook delivery "
        "carries it, newer than `after`. Passing each answer's `watermark` back as `after` yields every response "
        "once. With nothing new the list is empty and the watermark unchanged. Kept ResponseRetentionDays.",
        inbound.POLL_REFUSALS,
        ResponsesPage,
        {
            "responses": [
                {
                    "type": "text",
                    "payload": {"text": "It left the warehouse this morning."},
                    "conversationId": "conversation-42",
                    "botpressMessageId": "bp-message-1",
                    "clientId": "acme",
                    "userId": "user-7",
                }
            ],
            "watermark": "AAAAAAAAAAAAAAAAAAAAAQ8pY2lV0u4wbVQkXz3v8Kw",
        },
        parameters=[CONVERSATION_ID],
        query=ResponsesQuery,
        conversation_token=True,
    ),
    Operation(
        "post",
        "/conversations/{conversationId}/tokens",
        "Mint a conversation token for a browser or app (a back end's call)",
        "A token for one of the client's conversations (it need not exist yet) and one user, to hand to that "
        "user's browser or app instead of the client token. It sends with POST /messages (its own "
        "conversationId and userId only), reads GET /conversations/{its conversationId}/responses, refreshes "
        "itself with POST /tokens/refresh and opens `streamUrl`, the WebSocket stream of the conversation's "
        "responses. A disabled client's tokens are refused like its client token.",
        tokens.TOKEN_REFUSALS,
        tokens.TokenAnswer,
        TOKEN_ANSWER_EXAMPLE,
        tokens.TokenRequest,
        {"userId": "user-7", "ttlSeconds": 3600},
        parameters=[CONVERSATION_ID],
    ),
    Operation(
        "post",
        "/tokens/refresh",
        "Refresh a conversation token before it expires",
        "A new token for the same conversation and user, valid for the original `ttlSeconds` from now. "
        "An expired token is refused (401): the browser's back end mints a new one.",
        tokens.TOKEN_REFUSALS,
        tokens.TokenAnswer,
        TOKEN_ANSWER_EXAMPLE,
        client_token=False,
        conversation_token=True,
    ),
]

ATTEMPT_EXAMPLE = {
    "webhookId": "msg_bp-message-1",
    "conversationId": "conversation-42",
    "type": "text",
    "attempt": 2,
    "trigger": "schedule",
    "at": "2026-12-02T20:04:05.120000Z",
    "status": 503,
    "failure": "http",
    "durationMs": 84,
    "body": '{"error": "maintenance until 20:30"}',
}

OPERATIONS += [
    Operation(
        "get",
        "/client",
        "The client's endpoint: its state, last success and failure, a day's counts, stopped conversations",
        "What the relay knows of the client's response URL: its state (`healthy`, `failing`, `open`, `parked`, "
        "`disabled` or `off`) since when and why; the newest delivered and failed attempts and the day's counts "
        "(from the attempt log); the conversations whose delivery stopped at an undeliverable response. Never a "
        "secret or token. Client token only.",
        self_service.REFUSALS,
        ClientStatus,
        {
            "clientId": "acme",
            "name": "ACME back end",
            "responseUrl": "https://acme.example/relay",
            "endpoint": {
                "state": "open",
                "since": "2026-12-02T20:01:10.004000Z",
                "reason": "receiver answered HTTP 503",
                "openUntil": "2026-12-02T20:05:35.120000Z",
            },
            "lastSuccess": {**ATTEMPT_EXAMPLE, "attempt": 1, "status": 204, "failure": None, "body": ""},
            "lastFailure": ATTEMPT_EXAMPLE,
            "last24Hours": {"delivered": 1180, "failed": 14},
            "stoppedConversations": [
                {"conversationId": "order-17", "webhookId": "msg_bp-message-0", "since": "2026-12-01T09:30:00Z"}
            ],
        },
    ),
    Operation(
        "get",
        "/deliveries",
        "The client's delivery attempts, newest first (the attempt log)",
        "Every attempt to POST a response (or a test) to the client's response URL, kept AttemptRetentionDays: "
        "when, which attempt and why (`trigger`), the receiver's status or why there was none (`failure`), how "
        "long it took and the first 1 KB of its answer. Filtered by conversation, webhook-id, outcome and time; "
        "pass `cursor` back (with the same filters) for the next page. A page may hold fewer than `limit` "
        "attempts while a cursor says there are more: filters are applied to what is read. Client token only.",
        self_service.REFUSALS,
        AttemptsPage,
        {"attempts": [ATTEMPT_EXAMPLE], "cursor": "eyJkZWxpdmVyZWQiOm51bGwsImZhaWxlZCI6ImZhaWxlZCMyMDI2In0"},
        query=DeliveriesQuery,
    ),
    Operation(
        "post",
        "/client/test",
        "Send a signed test delivery to the response URL now",
        "A response of type `test` (conversation and user `relay-test`), signed as every delivery is, POSTed to "
        "the client's response URL now, whatever its endpoint's state; the breaker does not count it and a 410 "
        "does not switch the URL off. The answer is its attempt record, also in GET /deliveries (trigger `test`). "
        "No body. A client without a response URL gets 409. Client token only.",
        self_service.REFUSALS,
        Attempt,
        {
            **ATTEMPT_EXAMPLE,
            "webhookId": "msg_test-6f1c1f0e-8d3b-4c55-9a49-2b1f0c7e5a10",
            "conversationId": "relay-test",
            "type": "test",
            "attempt": 1,
            "trigger": "test",
            "status": 418,
            "body": "I'm a teapot",
        },
    ),
    Operation(
        "put",
        "/client/response-url",
        "Set or clear the response URL, switching the endpoint on",
        "Deliveries go to the new URL (null: none; the responses stay on SNS and in GET …/responses). It switches "
        "the endpoint on after a 410, a breaker, a park or a disable: parked conversations are delivered from the "
        "responses log first, each in order. Delivery functions read it within the client cache time (60 s). "
        "Answers what GET /client answers. Client token only.",
        self_service.REFUSALS,
        ClientStatus,
        {
            "clientId": "acme",
            "name": "ACME back end",
            "responseUrl": "https://acme.example/relay",
            "endpoint": {"state": "healthy", "since": None, "reason": None, "openUntil": None},
            "lastSuccess": None,
            "lastFailure": ATTEMPT_EXAMPLE,
            "last24Hours": {"delivered": 0, "failed": 14},
            "stoppedConversations": [],
        },
        self_service.ResponseUrlChange,
        {"responseUrl": "https://acme.example/relay"},
    ),
    Operation(
        "post",
        "/client/signing-secret",
        "Rotate the client's signing secret (shown once)",
        "A new `whsec_` secret for the client's deliveries. The previous one stays valid for `graceSeconds` (24 "
        "hours without a body, as `relay-clients rotate`): deliveries carry a signature with each meanwhile, so the "
        "receiver can switch over. Delivery functions read it within the client cache time (60 s). Store the "
        "secret: it is not shown again. Client token only.",
        self_service.REFUSALS,
        self_service.NewSigningSecret,
        {"signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "previousValidUntil": "2026-12-03T20:04:05Z"},
        self_service.SecretRotation,
        {"graceSeconds": 3600},
        body_required=False,
    ),
]

STATIC: dict[str, dict[str, Any]] = {
    "/relay-chat.js": {
        "get": {
            "summary": "The browser module",
            "description": "relay-chat.js, the ES module a web page uses to send with a conversation token and "
            "receive over the stream (docs/browsers.md). Any origin may import it.",
            "operationId": "getRelayChatJs",
            "security": [],
            "responses": {
                "200": {
                    "description": "The module.",
                    "content": {"text/javascript": {"schema": {"type": "string"}}},
                }
            },
        }
    }
}
"""Routes that answer a file, not JSON."""

GATEWAY_ANSWERS = {
    HTTPStatus.TOO_MANY_REQUESTS: "Throttled by API Gateway (the stage's rate or burst limit): retry with backoff.",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "Over API Gateway's 10 MB payload limit.",
}
"""What API Gateway itself answers on every route, with a `message` like the relay's own."""

SECONDS = {"type": "string", "pattern": "^[0-9]+$"}

HEADERS: dict[type[RelayError], dict[str, Any]] = {
    errors.Unauthorized: {
        "WWW-Authenticate": {"required": True, "schema": {"type": "string"}, "description": "The scheme: Bearer."}
    },
    errors.MessageInProgress: {
        "Retry-After": {
            "required": True,
            "schema": SECONDS,
            "description": "Seconds to wait before retrying with the same messageId.",
        }
    },
    # Not required: API Gateway's own 429 carries none of them.
    errors.RateLimited: {
        "Retry-After": {
            "schema": SECONDS,
            "description": "Seconds until the request would be admitted (the client over its rate).",
        },
        "RateLimit-Limit": {
            "schema": SECONDS,
            "description": "The client's burst: the most requests it can make at once (twice its rate per second).",
        },
        "RateLimit-Remaining": {"schema": SECONDS, "description": "Requests the client can make now: 0."},
        "RateLimit-Reset": {"schema": SECONDS, "description": "Seconds until the client's whole burst is back."},
    },
}
"""The headers each refusal is answered with, as relay.edge.api.answer sets them."""


WEBHOOK = {
    "post": {
        "summary": "A bot response, POSTed to the client's response URL",
        "description": "Each bot response in its own request, in the bot's order per conversation, signed as "
        "Standard Webhooks do (verify the signature over the raw body before parsing it). Any 2xx takes it; "
        "another answer is retried on the stack's schedule, 410 Gone switches the URL off. The same object is "
        "each item of `responses` in polling and `?wait` answers, and the message on the responses topic.",
        "operationId": "clientResponse",
        "parameters": [
            {"name": name, "in": "header", "required": True, "description": why, "schema": {"type": "string"}}
            for name, why in (
                ("webhook-id", "The same for every attempt and redrive of one response: deduplicate on it."),
                ("webhook-timestamp", "Seconds since the epoch when signed: refuse one far from now."),
                (
                    "webhook-signature",
                    "`v1,<base64 HMAC-SHA256>` per signing secret, space-separated (two while rotating).",
                ),
            )
        ],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": REF.format(model="ClientResponse")}}}},
        "responses": {"2XX": {"description": "Taken: not sent again."}},
    }
}
"""What the relay POSTs to each client's response URL (the delivery function)."""


def operational_events() -> dict[str, Any]:
    """Each operational event, as the operations topic carries it to a subscriber (relay.operations)."""
    return {
        event.model_fields["type"].default: {
            "post": {
                "summary": f"Operational event {event.model_fields['type'].default} (operations topic)",
                "description": _summary(event) + " One JSON message on the SNS topic OperationsTopicArn, with the "
                "message attributes `clientId` and `type` for a subscription's filter policy; fields that do not "
                "apply are left out.",
                "operationId": event.__name__[0].lower() + event.__name__[1:],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"$ref": REF.format(model=event.__name__)}}},
                },
                "responses": {"2XX": {"description": "Taken (SNS retries a subscription's endpoint by its policy)."}},
            }
        }
        for event in EVENTS
    }


def describe(operations: list[Operation] = OPERATIONS) -> dict[str, Any]:
    used: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((op.body, "validation") for op in operations if op.body),
        *((op.answer, "serialization") for op in operations),
        *((op.answer_or, "serialization") for op in operations if op.answer_or),
        (ClientResponse, "serialization"),
        (ErrorBody, "serialization"),
        *((event, "serialization") for event in EVENTS),
    ]
    refs, defs = models_json_schema(used, by_alias=True, ref_template=REF)
    for model in defs["$defs"].values():
        for property_ in model.get("properties", {}).values():
            property_.pop("title", None)  # made from the alias ("Conversationid"): the name says it better
    schema = {(model, mode): ref for (model, mode), ref in refs.items()}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schema)
    paths.update(STATIC)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Messaging relay",
            "version": "1.0.0",
            "description": "Between back-end applications (clients) and a Botpress bot, as the Botpress Messaging "
            "API integration, with a token per client, duplicate messageIds dropped, conversations scoped per "
            "client, and signed, ordered, retried deliveries. Every refusal answers JSON saying what is wrong.",
        },
        "servers": [
            {"url": "http://127.0.0.1:3000", "description": "make dev"},
            {
                "url": "https://{apiId}.execute-api.{region}.amazonaws.com",
                "description": "a deployed stack (its ApiUrl output)",
                "variables": {"apiId": {"default": "abcdef1234"}, "region": {"default": "eu-west-1"}},
            },
        ],
        "paths": paths,
        "webhooks": {"clientResponse": WEBHOOK, **operational_events()},
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "clientToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The client's own token, `<client id>.<secret>`, as `relay-clients create` "
                    "issues it (any case of `Bearer`, as Botpress sends `bearer`).",
                },
                "conversationToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A conversation token (`ct_…`) from POST /conversations/{conversationId}/tokens: "
                    "one conversation as one user, for a browser or app; an expired one is a 401.",
                },
            },
        },
    }


def _operation(op: Operation, schema: dict[tuple[Any, JsonSchemaMode], Any]) -> dict[str, Any]:
    described: dict[str, Any] = {
        "summary": op.summary,
        "description": op.description,
        "operationId": f"{op.method}{''.join(p.strip('{}').title() for p in op.path.split('/'))}",
        "security": [
            *([{"clientToken": []}] if op.client_token else []),
            *([{"conversationToken": []}] if op.conversation_token else []),
        ],
    }
    if parameters := [*op.parameters, *_query_parameters(op.query)]:
        described["parameters"] = parameters
    if op.body:
        body = schema[op.body, "validation"]
        if op.body_or:
            body = {"anyOf": [body, op.body_or]}
        described["requestBody"] = {
            "required": op.body_required,
            "description": f"A JSON object in UTF-8, at most {MAX_BODY_BYTES // 1024} KiB (the functions' "
            f"MAX_BODY_BYTES) and {MAX_JSON_DEPTH} levels deep.",
            "content": {JSON: {"schema": body, "example": op.body_example}},
        }
    answer = schema[op.answer, "serialization"]
    if op.answer_or:
        answer = {"anyOf": [schema[op.answer_or, "serialization"], answer]}
    described["responses"] = {
        "200": {
            "description": " Or: ".join(_summary(model) for model in (op.answer, op.answer_or) if model),
            "content": {JSON: {"schema": answer, "example": op.answer_example}},
        },
        **{
            str(int(status)): _refusal(why, headers, schema[ErrorBody, "serialization"])
            for status, why, headers in _refused(op)
        },
    }
    return described


def _query_parameters(query: type[BaseModel] | None) -> list[dict[str, Any]]:
    if query is None:
        return []
    schema = query.model_json_schema(mode="validation", by_alias=True)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            **({"description": field.pop("description")} if "description" in field else {}),
            "schema": {key: value for key, value in field.items() if key != "title"},
        }
        for name, field in schema["properties"].items()
    ]


def _refused(op: Operation) -> list[tuple[HTTPStatus, str, dict[str, Any]]]:
    """Each status the operation can refuse with, why, and its headers: its refusals (and their subclasses),
    invalid bodies (422, each field named) and what API Gateway answers itself."""
    why: dict[HTTPStatus, list[str]] = {}
    headers: dict[HTTPStatus, dict[str, Any]] = {}
    for kind, status in STATUS.items():
        if any(issubclass(kind, refusal) for refusal in op.refusals):
            why.setdefault(status, []).append(_summary(kind))
            headers.setdefault(status, {}).update(HEADERS.get(kind, {}))
    if op.body:
        why.setdefault(HTTPStatus.UNPROCESSABLE_ENTITY, []).append("A field is missing or invalid: each is named.")
    for status, reason in GATEWAY_ANSWERS.items():
        why.setdefault(status, []).append(reason)
    return sorted((status, " ".join(reasons), headers.get(status, {})) for status, reasons in why.items())


def _refusal(why: str, headers: dict[str, Any], error_body: Any) -> dict[str, Any]:
    return {"description": why, **({"headers": headers} if headers else {}), "content": {JSON: {"schema": error_body}}}


def _summary(kind: type) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join((kind.__doc__ or kind.__name__).strip().split("\n\n")[0].split())


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # each schema written out where it is used, no &anchors


def main() -> None:
    yaml.dump(describe(), sys.stdout, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


if __name__ == "__main__":
    main()
