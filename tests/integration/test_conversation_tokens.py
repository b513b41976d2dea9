"""Conversation tokens through the client API's handler on moto: minted by a back end, used by a browser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from pytest_httpserver import HTTPServer

from harness import Relay, message
from relay.conversation_tokens import ConversationGrant, ConversationTokens

ORIGIN = "https://shop.example"


@pytest.fixture
def client(relay: Relay) -> str:
    _, token = relay.add_client("acme")
    return token


def mint(relay: Relay, token: str, conversation: str = "order-42", **body: Any) -> dict[str, Any]:
    response = relay.mint_token(token, conversation, {"userId": "alice", **body})
    assert response.status == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_back_end_mints_a_token_for_a_conversation_that_need_not_exist_yet(relay: Relay, client: str) -> None:
    before = datetime.now(UTC).timestamp()
    answer = mint(relay, client, "order/42", ttlSeconds=600)

    assert set(answer) == {"token", "conversationId", "userId", "expiresAt", "streamUrl"}
    assert (answer["conversationId"], answer["userId"]) == ("order/42", "alice")
    assert answer["token"].startswith("ct_") and answer["expiresAt"].endswith("Z")
    expires = datetime.fromisoformat(answer["expiresAt"]).timestamp()
    assert before + 599 <= expires <= datetime.now(UTC).timestamp() + 600
    url = urlsplit(answer["streamUrl"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == relay.inbound.environment["STREAM_URL"]
    assert parse_qs(url.query) == {"token": [answer["token"]]}


def test_a_browser_sends_and_reads_its_conversation_with_the_token(relay: Relay, client: str) -> None:
    token = mint(relay, client)["token"]

    sent = relay.post_message(token, message("order-42", userId="alice", text="hi"))
    assert sent.status == 200, sent.text
    (forwarded,) = relay.forwarded()
    relay.reply(forwarded)
    relay.record()

    page = relay.get_responses(token, "order-42")
    assert page.status == 200
    assert [r["payload"]["text"] for r in page.json()["responses"]] == ["reply 1 to hi"]
    assert forwarded["conversationId"] == "acme:order-42" and forwarded["userId"] == "acme:alice"


@pytest.mark.parametrize(
    ("fields", "field"), [({"conversationId": "order-43"}, "conversationId"), ({"userId": "bob"}, "userId")]
)
def test_a_token_sends_only_as_its_user_in_its_conversation(
    relay: Relay, client: str, fields: dict[str, str], field: str
) -> None:
    token = mint(relay, client)["token"]

    refused = relay.post_message(token, message("order-42", userId="alice") | fields)

    assert refused.status == 403
    assert refused.json()["errors"][0]["field"] == field
    assert relay.forwarded() == []


def test_a_token_reads_only_its_own_conversation_and_mints_nothing(relay: Relay, client: str) -> None:
    token = mint(relay, client)["token"]

    assert relay.get_responses(token, "order-43").status == 403
    assert relay.mint_token(token, "order-42", {"userId": "alice"}).status == 403
    assert relay.refresh_token(client).status == 403  # a client token refreshes nothing


def test_a_refresh_gives_a_new_token_for_the_same_grant_and_its_ttl_from_now(relay: Relay, client: str) -> None:
    first = mint(relay, client, ttlSeconds=120)

    refreshed = relay.refresh_token(first["token"])

    assert refreshed.status == 200, refreshed.text
    answer = refreshed.json()
    assert (answer["conversationId"], answer["userId"]) == ("order-42", "alice")
    assert datetime.fromisoformat(answer["expiresAt"]) >= datetime.fromisoformat(first["expiresAt"])
    assert relay.post_message(answer["token"], message("order-42", userId="alice")).status == 200


def test_a_forged_malformed_or_expired_token_is_a_401(relay: Relay, client: str) -> None:
    token = mint(relay, client)["token"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    key = relay.stack.secret_values["ConversationTokenKeySecret"]
    an_hour_ago = datetime.now(UTC).timestamp() - 3600
    expired = ConversationTokens(lambda: key).issue(
        ConversationGrant.starting("acme", "order-42", "alice", 60, an_hour_ago)
    )

    for bad in (forged, "ct_nonsense", token.replace("ct_", "ct_x", 1), expired):
        refused = relay.post_message(bad, message("order-42", userId="alice"))
        assert refused.status == 401, bad
        assert "www-authenticate" in refused.headers
    refresh = relay.refresh_token(expired)
    assert refresh.status == 401 and "expired" in refresh.json()["message"]


def test_a_disabled_clients_tokens_stop_working(relay: Relay, client: str) -> None:
    from devstack.lambdas import LocalFunction

    # A container whose client cache time is over at once, as it is a minute after the operator's change.
    relay.inbound = LocalFunction(relay.stack.functions["InboundFunction"], {"CACHE_TTL_SECONDS": "0.001"})
    token = mint(relay, client)["token"]
    relay.clients.set_enabled("acme", False)

    refused = relay.post_message(token, message("order-42", userId="alice"))

    assert refused.status == 401 and "disabled" in refused.json()["message"]
    assert relay.refresh_token(token).status == 401
    assert relay.get_responses(token, "order-42").status == 401


def test_a_bad_token_request_names_the_field(relay: Relay, client: str) -> None:
    bad = [({}, "userId"), ({"userId": "alice", "ttlSeconds": 59}, "ttlSeconds"), ({"userId": "a", "ttl": 60}, "ttl")]

    for body, field in bad:  # each in turn, in one relay
        refused = relay.mint_token(client, "order-42", body)

        assert refused.status == 422, body
        assert [e["field"] for e in refused.json()["errors"]] == [field], body


# ── CORS ──


@pytest.fixture
def browser_relay(aws: boto3.Session, bot: HTTPServer) -> Relay:
    bot.expect_request("/webhook", method="POST").respond_with_json({"message": {"id": "bp-msg"}})
    return Relay(aws, bot, {"BrowserOrigins": f"{ORIGIN},http://127.0.0.1:3000"})


def preflight(relay: Relay, path: str, origin: str = ORIGIN) -> Any:
    return relay._call(
        relay.inbound,
        path,
        b"",
        {"origin": origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization"},
        method="OPTIONS",
    )


@pytest.mark.parametrize("path", ["/messages", "/conversations/order-42/responses", "/tokens/refresh"])
def test_the_routes_a_token_may_use_answer_the_preflight_of_a_listed_origin(browser_relay: Relay, path: str) -> None:
    answer = preflight(browser_relay, path)

    assert answer.status == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in answer.headers["access-control-allow-headers"].lower()
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert preflight(browser_relay, path, "https://evil.example").headers.get("access-control-allow-origin") is None


def test_the_answers_to_a_browser_carry_cors_headers_and_the_token_route_none(browser_relay: Relay) -> None:
    _, client = browser_relay.add_client("acme")
    minted = browser_relay.mint_token(client, "order-42", {"userId": "alice"})
    token = minted.json()["token"]
    origin = {"origin": ORIGIN}

    sent = browser_relay.post_message(token, message("order-42", userId="alice"), headers=origin)
    refused = browser_relay.post_message(token, message("order-43", userId="alice"), headers=origin)

    assert sent.headers["access-control-allow-origin"] == ORIGIN
    assert refused.status == 403 and refused.headers["access-control-allow-origin"] == ORIGIN
    token_route = browser_relay._call(
        browser_relay.inbound,
        "/conversations/order-42/tokens",
        b'{"userId": "a"}',
        {**origin, "authorization": f"Bearer {client}"},
    )
    assert token_route.status == 200 and "access-control-allow-origin" not in token_route.headers
    assert not any(
        method == "OPTIONS" and "tokens" in route and "refresh" not in route
        for method, route in browser_relay.inbound.spec.http_routes
    )


def test_without_browser_origins_no_route_answers_cors(relay: Relay, client: str) -> None:
    token = mint(relay, client)["token"]

    sent = relay.post_message(token, message("order-42", userId="alice"), headers={"origin": ORIGIN})

    assert sent.status == 200 and "access-control-allow-origin" not in sent.headers
    assert preflight(relay, "/messages").headers.get("access-control-allow-origin") is None
