"""The local stack fuzzed from openapi.yaml: whatever a client or bot sends, no 5xx, and every answer as described."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import TypeAdapter, ValidationError
from schemathesis import Case
from schemathesis.core.parameters import ParameterLocation

from parties import BOT_SECRET, CLIENT_TOKEN, relay_clients
from relay.attempts import Rfc3339
from relay.models import ID_MAX_LENGTH
from stack_process import ROOT, StackProcess

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
"""Examples per operation and credentials; raise it for a longer run (`FUZZ_EXAMPLES=500 make e2e`)."""

WAIT_SECONDS = 0.2
"""A drawn `wait` longer than this is cut to it."""

schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")


CHANGES_ITS_CLIENT = ("/client/response-url", "/client/signing-secret")
"""Routes whose valid requests change the caller's own client: fuzzed as a client of their own, so the shared
stack's client keeps its response URL and signing secret for the other tests."""


@pytest.fixture(scope="module")
def own_client(stack: StackProcess) -> str:
    """A client made for the fuzz with `relay-clients --dev create`: its token."""
    created = relay_clients(stack, "create", "--id", f"fuzz-{uuid.uuid4().hex[:8]}", "--name", "fuzz")
    return next(line.split()[-1] for line in created.splitlines() if "bearer token:" in line)


@pytest.mark.parametrize("credentials", ["valid", "none"])
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_request_is_answered_as_described(
    case: Case[Any], credentials: str, stack: StackProcess, own_client: str
) -> None:
    if case.method.upper() != case.operation.method.upper():
        return  # a method no route has is the gateway's to answer: test_hostile_requests.py
    headers = {}
    # Headers drawn to be invalid (no Authorization) stay so: credentials added to them would make the case valid
    # while schemathesis still expects it refused.
    if credentials == "valid" and not (case.meta and case.meta.is_negative_at(ParameterLocation.HEADER)):
        if case.path_parameters and "secret" in case.path_parameters:
            case.path_parameters["secret"] = BOT_SECRET
        else:
            token = own_client if case.operation.path in CHANGES_ITS_CLIENT else CLIENT_TOKEN
            headers["Authorization"] = f"Bearer {token}"
    body = case.body
    message_id = body.get("messageId") if isinstance(body, dict) else None
    if (
        isinstance(body, dict)
        and isinstance(message_id, str)
        and message_id.strip()
        and len(message_id) <= ID_MAX_LENGTH
    ):
        # A messageId reused for another message is rightly a 422: each valid example gets its own, still valid.
        unique = f"-{uuid.uuid4()}"
        body["messageId"] = message_id[: ID_MAX_LENGTH - len(unique)] + unique
    wait = case.query.get("wait") if case.query else None
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > WAIT_SECONDS:
        # The answer's shape is what is checked here, not the waiting (test_polling, test_replies_over_http):
        # a drawn wait, up to 25 s and each valid POST a second of the bot's quiet at least, is cut short.
        case.query["wait"] = WAIT_SECONDS
    for issued in ("after", "cursor"):
        if case.query and issued in case.query:
            # A watermark or a page's cursor is the relay's to issue: a drawn one is rightly a 400 naming it
            # (test_polling, the attempt log's tests).
            del case.query[issued]
    since, until = (body.get("since"), body.get("until")) if isinstance(body, dict) else (None, None)
    if isinstance(body, dict) and isinstance(since, str) and isinstance(until, str) and _parsed(until) < _parsed(since):
        # A window's order is a rule the schema cannot state: an inverted one is rightly a 400 naming `until`
        # (test_recovery_flow). A drawn pair is put in order, still valid, so the window itself is fuzzed.
        body["since"], body["until"] = until, since
    case.call_and_validate(base_url=stack.api_url, headers=headers)


def _parsed(text: str) -> datetime:
    """An RFC 3339 time as the relay reads it; one it cannot read compares as the earliest (the relay names it)."""
    try:
        return RFC3339.validate_python(text)
    except ValidationError:
        return datetime.min.replace(tzinfo=UTC)


RFC3339: TypeAdapter[datetime] = TypeAdapter(Rfc3339)
