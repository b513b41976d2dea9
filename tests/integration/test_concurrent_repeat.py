"""A repeat that arrives while the first copy is still with the bot: 409 with Retry-After, forwarded once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from harness import Relay, message


def test_concurrent_repeat_is_refused_with_retry_after(aws: boto3.Session, bot: HTTPServer) -> None:
    bot_has_it, release = threading.Event(), threading.Event()

    def slow_bot(_: Request) -> Response:
        bot_has_it.set()
        release.wait(5)
        return Response("{}", status=200, content_type="application/json")

    bot.expect_request("/webhook", method="POST").respond_with_handler(slow_bot)
    relay = Relay(aws, bot)
    _, token = relay.add_client("acme")
    sent = message(message_id="m-1")

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(relay.post_message, token, sent)
        assert bot_has_it.wait(5)
        repeat = relay.post_message(token, sent)
        release.set()
        assert first.result().status == 200

    assert repeat.status == 409, repeat
    assert int(repeat.headers["retry-after"]) > 0
    assert "messageId" in repeat.json()["message"]
    assert len(relay.forwarded()) == 1
    assert relay.post_message(token, sent).json()["status"] == "duplicate"
