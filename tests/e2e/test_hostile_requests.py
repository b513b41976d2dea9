"""Hand-picked hostile requests over HTTP: each is a 4xx whose JSON body names what is wrong, and nothing reaches
the bot or the topic. (Deep nesting and lone surrogates are covered at the handler in tests/integration.)"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest
import urllib3

from parties import BOT_SECRET, CLIENT_TOKEN, Bot
from stack_process import StackProcess

http = urllib3.PoolManager(timeout=30, retries=False)


def message(**fields: Any) -> dict[str, Any]:
    return {
        "userId": "user-1",
        "messageId": str(uuid.uuid4()),
        "conversationId": f"hostile-{uuid.uuid4().hex[:8]}",
        "type": "text",
        "text": "hello",
        **fields,
    }


def bot_response(**fields: Any) -> dict[str, Any]:
    return {
        "type": "text",
        "payload": {"text": "hi"},
        "conversationId": "e2e:never-used",
        "botpressMessageId": str(uuid.uuid4()),
        **fields,
    }


def post(url: str, body: bytes, authorization: str | bytes | None = f"Bearer {CLIENT_TOKEN}") -> tuple[int, Any]:
    headers: dict[str, Any] = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    response = http.request("POST", url, body=body, headers=headers)
    assert response.headers.get("content-type") == "application/json", response.data[:200]
    return response.status, response.json()


def sent_to_bot(bot: Bot, marker: str) -> bool:
    return any(marker in json.dumps(forwarded) for forwarded in bot.forwarded)


@pytest.mark.parametrize("route", ["messages", "bot"])
def test_a_body_that_is_not_utf8_is_a_400_saying_so(stack: StackProcess, bot: Bot, route: str) -> None:
    marker = f"m{uuid.uuid4().hex}"  # the bot is the session's: other tests' (and the fuzz's) texts are in its log
    text = f"{marker}-é-llo"
    sent = message(text=text) if route == "messages" else bot_response(payload={"text": text})
    raw = json.dumps(sent, ensure_ascii=False).encode()
    url = f"{stack.api_url}/messages" if route == "messages" else f"{stack.api_url}/bot/responses/{BOT_SECRET}"

    status, body = post(url, raw.replace("é".encode(), b"\xff") + b"\xc3")

    assert (status, "UTF-8" in body["message"]) == (400, True), body
    assert not sent_to_bot(bot, marker)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer e2é.tøken", id="latin-1"),
        pytest.param("Bearer e2e.tøken".encode(), id="utf-8-bytes"),
        pytest.param(b"Bearer \xff\xfe." + CLIENT_TOKEN.split(".")[1].encode(), id="invalid-utf-8"),
        pytest.param(f"Bearer {'a' * 3000}.{CLIENT_TOKEN.split('.')[1]}", id="long-client-id"),
    ],
)
def test_a_non_ascii_or_malformed_token_is_a_401(stack: StackProcess, bot: Bot, authorization: str | bytes) -> None:
    sent = message()

    status, body = post(f"{stack.api_url}/messages", json.dumps(sent).encode(), authorization)

    assert status == 401
    assert body["message"].startswith("invalid client token (a token made by a rotation is accepted within")
    assert not sent_to_bot(bot, sent["messageId"])


@pytest.mark.parametrize("route", ["messages", "bot"])
def test_a_key_given_twice_is_a_400_naming_it(stack: StackProcess, bot: Bot, route: str) -> None:
    """Parsers differ on which of two equal keys wins: the relay takes neither guess."""
    if route == "messages":
        sent = message()
        url = f"{stack.api_url}/messages"
        raw = json.dumps(sent)[:-1] + ', "conversationId": "someone-else"}'
    else:
        sent = bot_response()
        url = f"{stack.api_url}/bot/responses/{BOT_SECRET}"
        raw = json.dumps(sent)[:-1] + ', "payload": {"text": "a second payload"}}'

    status, body = post(url, raw.encode())

    assert status == 400, body
    assert "twice" in body["message"] and ("conversationId" if route == "messages" else "payload") in body["message"]
    if route == "messages":
        assert not sent_to_bot(bot, sent["messageId"])


def test_a_text_over_the_body_limit_is_a_413_naming_the_limit(stack: StackProcess, bot: Bot) -> None:
    sent = message(text="x" * (300 * 1024))

    status, body = post(f"{stack.api_url}/messages", json.dumps(sent).encode())

    assert status == 413 and "262144 bytes" in body["message"], body
    assert not sent_to_bot(bot, sent["messageId"])


def test_a_large_text_within_the_limit_reaches_the_bot_whole(stack: StackProcess, bot: Bot) -> None:
    text = "é" * (100 * 1024)  # 200 KiB of UTF-8
    sent = message(text=text)

    status, body = post(f"{stack.api_url}/messages", json.dumps(sent, ensure_ascii=False).encode())

    assert (status, body["status"]) == (200, "forwarded")
    (forwarded,) = [m for m in bot.forwarded if m["messageId"].endswith(sent["messageId"])]
    assert forwarded["text"] == text


def test_a_body_over_the_gateway_limit_is_a_413(stack: StackProcess) -> None:
    status, body = post(f"{stack.api_url}/messages", b'{"text": "' + b"x" * (11 * 1024 * 1024) + b'"}')

    assert status == 413 and body["message"], body


@pytest.mark.parametrize(
    "secret",
    ["s\u00e9cret", "%ff%fe", BOT_SECRET + "\u00a0", "x" * 5000],
    ids=["non-ascii", "percent-bytes", "right-secret-and-nbsp", "5000-chars"],
)
def test_a_wrong_secret_however_odd_is_a_403(stack: StackProcess, secret: str) -> None:
    path = quote(secret, safe="%")

    status, body = post(f"{stack.api_url}/bot/responses/{path}", json.dumps(bot_response()).encode(), None)

    assert status == 403 and "secret" in body["message"], body
