"""The local stack fuzzed from openapi.yaml: whatever a client or bot sends, no 5xx, and every answer as described."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
import urllib3
import yaml
from hypothesis import HealthCheck, settings
from pydantic import TypeAdapter, ValidationError
from schemathesis import Case
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import TestPhase

from harness import local_server
from parties import BOT_SECRET, CLIENT_TOKEN, relay_clients
from relay.attempts import UtcTime
from relay.models import ID_MAX_LENGTH
from relay.rate_limits import MAX_RATE
from stack_process import ROOT, StackProcess, post_json

LONG = "FUZZ_EXAMPLES" in os.environ
"""`make fuzz` (or `FUZZ_EXAMPLES=500 make e2e`); `make test` fuzzes briefly, on the stack's busiest worker."""

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
"""Examples per operation and credentials drawn at random (`make fuzz` 300), besides schemathesis' coverage phase
(each parameter's boundaries and wrong types, a fixed set of a hundred cases or fewer per operation)."""

SELF_SERVICE_EXAMPLES = max(EXAMPLES // 5, 2)
"""For the self-service routes: their bodies and queries are few fields, each one validated by a model the
integration tests try value by value (tests/integration/test_attempts.py, test_self_service.py), and the suite's
time is spent on the stack's busiest worker."""

WAIT_SECONDS = 0.2
"""A drawn `wait` longer than this is cut to it."""

SELF_SERVICE = ("/client", "/deliveries")
"""The routes that change or read a client's own endpoint: fuzzed as a client of their own, so that a drawn URL,
secret or recover never reaches the shared stack's client (its response URL, its signing secret and its
conversations are the other tests')."""

_http = urllib3.PoolManager(timeout=30, retries=False)

schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
SELF_SERVICE_PATHS = "^/(client|deliveries)"


@dataclass(frozen=True)
class Fuzzed:
    """The client the self-service routes are fuzzed as, and where its deliveries (a test's) go."""

    token: str
    sink: str


@pytest.fixture(scope="module")
def fuzzed(stack: StackProcess) -> Iterator[Fuzzed]:
    for sink in local_server():
        sink.expect_request("/sink", method="POST").respond_with_data("", status=204)
        client_id = f"fuzz-{secrets.token_hex(3)}"
        created = relay_clients(stack, "create", "--id", client_id, "--name", client_id)
        relay_clients(stack, "set-rate", client_id, str(MAX_RATE))  # what is checked is the answers, not the rate
        yield Fuzzed(
            next(line.split()[-1] for line in created.splitlines() if "bearer token:" in line), sink.url_for("/sink")
        )


def client_token_only() -> list[tuple[str, str]]:
    """(method, path) of every route a client token alone may call, as openapi.yaml says."""
    described = yaml.safe_load((ROOT / "openapi.yaml").read_text())["paths"]
    return [
        (method.upper(), path)
        for path, operations in described.items()
        for method, operation in operations.items()
        if operation.get("security") == [{"clientToken": []}]
    ]


@pytest.mark.parametrize("credentials", ["valid", "none"])
@schema.exclude(path_regex=SELF_SERVICE_PATHS).parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_request_is_answered_as_described(
    case: Case[Any], credentials: str, stack: StackProcess, fuzzed: Fuzzed
) -> None:
    answered_as_described(case, credentials, stack, fuzzed)


@pytest.mark.parametrize("credentials", ["valid", "none"])
@schema.include(path_regex=SELF_SERVICE_PATHS).parametrize()
@settings(max_examples=SELF_SERVICE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_self_service_request_is_answered_as_described(
    case: Case[Any], credentials: str, stack: StackProcess, fuzzed: Fuzzed
) -> None:
    answered_as_described(case, credentials, stack, fuzzed)


def answered_as_described(case: Case[Any], credentials: str, stack: StackProcess, fuzzed: Fuzzed) -> None:
    if case.method.upper() != case.operation.method.upper():
        return  # a method no route has is the gateway's to answer: test_hostile_requests.py
    if credentials == "none" and case.meta and case.meta.phase.name == TestPhase.COVERAGE and not LONG:
        # Without credentials each is refused whatever it varies: in a brief run, the coverage phase is sent with
        # valid credentials (where its values are read) and its refusals are the random examples' to check.
        return
    headers = {}
    # Headers drawn to be invalid (no Authorization) stay so: credentials added to them would make the case valid
    # while schemathesis still expects it refused.
    if credentials == "valid" and not (case.meta and case.meta.is_negative_at(ParameterLocation.HEADER)):
        if case.path_parameters and "secret" in case.path_parameters:
            case.path_parameters["secret"] = BOT_SECRET
        elif case.path.startswith(SELF_SERVICE):
            headers["Authorization"] = f"Bearer {fuzzed.token}"
            if case.path == "/client/test":  # to the sink, whatever URL an earlier example set
                set_url = json.dumps({"responseUrl": fuzzed.sink})
                put = _http.request("PUT", f"{stack.api_url}/client/response-url", body=set_url, headers=headers)
                assert put.status == 200, put.data
        else:
            headers["Authorization"] = f"Bearer {CLIENT_TOKEN}"
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


RFC3339: TypeAdapter[datetime] = TypeAdapter(UtcTime)


@pytest.mark.parametrize(("method", "path"), client_token_only())
def test_a_conversation_token_is_refused_on_every_route_for_a_client_token_alone(
    stack: StackProcess, fuzzed: Fuzzed, method: str, path: str
) -> None:
    _, minted = post_json(
        f"{stack.api_url}/conversations/c-1/tokens", {"userId": "u-1"}, {"authorization": f"Bearer {fuzzed.token}"}
    )
    before = _http.request("GET", f"{stack.api_url}/client", headers={"authorization": f"Bearer {fuzzed.token}"})

    answer = _http.request(
        method,
        f"{stack.api_url}{path.replace('{conversationId}', 'c-1')}",
        body=b"{}",
        headers={"authorization": f"Bearer {minted['token']}", "content-type": "application/json"},
    )

    assert before.status == 200, before.data
    assert answer.status == 403, answer.data
    assert "client token" in answer.json()["message"]
    after = _http.request("GET", f"{stack.api_url}/client", headers={"authorization": f"Bearer {fuzzed.token}"})
    assert after.json()["responseUrl"] == before.json()["responseUrl"], "nothing changed"
