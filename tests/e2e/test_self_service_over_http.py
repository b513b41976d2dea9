"""A client finds out why its deliveries fail and fixes it itself, on the local stack over HTTP: its attempts, its
endpoint's state, a test delivery, a new response URL, a recover. Each test has a client of its own (made with
relay-clients, as an operator would), so the shared stack's own client is untouched."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from harness import local_server
from parties import conversation, relay_clients, responses, send
from stack_process import StackProcess

_http = urllib3.PoolManager(timeout=30, retries=False)


@pytest.fixture(scope="module")
def hooks() -> Iterator[HTTPServer]:
    """The test clients' receivers: one path each."""
    yield from local_server(threaded=True)


class Receiver:
    """A client's webhook that answers each POST as `answer` says (status, body), and keeps what it got."""

    def __init__(self, server: HTTPServer, answer: Callable[[dict[str, Any], int], tuple[int, str]]) -> None:
        self.path = f"/{secrets.token_hex(4)}"
        self.url = server.url_for(self.path)
        self.got: list[tuple[dict[str, Any], str, int]] = []
        self._answer = answer
        server.expect_request(self.path, method="POST").respond_with_handler(self._take)

    def _take(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        status, text = self._answer(body, len(self.got))
        self.got.append((body, request.headers["webhook-id"], status))
        return Response(text, status=status)

    def delivered(self) -> list[tuple[str, str]]:
        """(text, webhook-id) of each response taken with a 2xx, in order."""
        return [(body["payload"]["text"], webhook_id) for body, webhook_id, status in self.got if status < 300]


class Client:
    """A client an operator made, calling its self-service routes."""

    def __init__(self, stack: StackProcess, response_url: str) -> None:
        self.id = f"ss-{secrets.token_hex(3)}"
        created = relay_clients(stack, "create", "--id", self.id, "--name", self.id, "--response-url", response_url)
        self.token = next(line.split()[-1] for line in created.splitlines() if "bearer token:" in line)
        self._api = stack.api_url

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> tuple[int, Any]:
        answer = _http.request(
            method,
            f"{self._api}{path}",
            fields=query or None,
            body=None if body is None else json.dumps(body),
            headers={"authorization": f"Bearer {self.token}", "content-type": "application/json"},
        )
        return answer.status, answer.json()

    def until(self, what: Callable[[], Any], timeout: float = 30) -> Any:
        """`what()` once it is truthy (the stack works in the background)."""
        deadline = time.monotonic() + timeout
        while not (found := what()):
            assert time.monotonic() < deadline, f"not within {timeout} s"
            time.sleep(0.1)
        return found


def once(delivered: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What a receiver keeps that drops repeats by webhook-id (a response skipped just as the URL was switched on
    may come once from the queue and once from the recover: at least once, the same id)."""
    first: dict[str, tuple[str, str]] = {}
    for text, webhook_id in delivered:
        first.setdefault(webhook_id, (text, webhook_id))
    return list(first.values())


def test_a_receiver_that_fails_three_times_shows_failing_then_healthy_with_every_attempt(
    stack: StackProcess, hooks: HTTPServer
) -> None:
    hook = Receiver(hooks, lambda body, tried: (503, f"down for maintenance ({tried + 1})") if tried < 3 else (204, ""))
    client = Client(stack, hook.url)
    chat = conversation()

    assert send(stack, chat, "are you there?", token=client.token)[0] == 200
    failing = client.until(lambda: (a := client.call("GET", "/client")[1])["endpoint"]["state"] != "healthy" and a)
    client.until(lambda: hook.delivered())
    healthy = client.until(lambda: (a := client.call("GET", "/client")[1])["endpoint"]["state"] == "healthy" and a)
    status, page = client.call("GET", "/deliveries", conversationId=chat)

    assert failing["endpoint"]["state"] in ("failing", "open")  # open once the third failure opens the breaker
    assert failing["endpoint"]["reason"] == "receiver answered HTTP 503" and failing["lastSuccess"] is None
    assert healthy["lastSuccess"]["conversationId"] == chat and healthy["last24Hours"] == {"delivered": 1, "failed": 3}
    attempts = page["attempts"]
    assert status == 200 and [(a["attempt"], a["status"], a["failure"]) for a in attempts] == [
        (4, 204, None),
        (3, 503, "http"),
        (2, 503, "http"),
        (1, 503, "http"),
    ]
    assert [a["body"] for a in attempts[1:]] == [f"down for maintenance ({n})" for n in (3, 2, 1)]
    # Each container's breaker counts its own POSTs (relay.endpoints): the fourth is the probe when one container
    # made all three, a retry on schedule when the stack's other traffic had them made by two (as on AWS, no
    # environment is promised to a message). The breaker's opening is tests/unit/test_delivery_flow.py's.
    assert attempts[0]["trigger"] in ("probe", "schedule")
    assert {a["webhookId"] for a in attempts} == {hook.got[0][1]}


def test_a_test_delivery_to_a_teapot_reports_it_and_a_new_url_switches_delivery_there(
    stack: StackProcess, hooks: HTTPServer
) -> None:
    teapot = Receiver(hooks, lambda body, tried: (418, "I'm a teapot"))
    fine = Receiver(hooks, lambda body, tried: (204, ""))
    client = Client(stack, teapot.url)

    status, tested = client.call("POST", "/client/test")
    switched = client.call("PUT", "/client/response-url", {"responseUrl": fine.url})
    again = client.call("POST", "/client/test")

    assert status == 200 and (tested["status"], tested["failure"], tested["body"]) == (418, "http", "I'm a teapot")
    assert (tested["type"], tested["trigger"]) == ("test", "test") and teapot.got[0][0]["type"] == "test"
    assert switched[0] == 200 and switched[1]["responseUrl"] == fine.url
    assert again[1]["status"] == 204 and len(fine.got) == 1
    assert client.call("GET", "/deliveries", status="failed")[1]["attempts"] == [tested]


def test_recover_after_a_410_delivers_the_window_again_in_order_with_the_same_ids(
    stack: StackProcess, hooks: HTTPServer
) -> None:
    gone = Receiver(hooks, lambda body, tried: (410, "") if tried == 0 else (204, ""))
    client = Client(stack, gone.url)
    chat = conversation()
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))

    send(stack, chat, "first", token=client.token)
    client.until(lambda: client.call("GET", "/client")[1]["endpoint"]["state"] == "off")
    send(stack, chat, "second", replies=2, token=client.token)  # skipped: the URL is off
    client.until(lambda: len(responses(stack, chat, client.token)[1]["responses"]) == 3)  # in the responses log
    client.call("PUT", "/client/response-url", {"responseUrl": gone.url})
    status, recovered = client.call("POST", "/client/recover", {"since": since})
    client.until(lambda: len(once(gone.delivered())) == 3)

    assert (status, recovered) == (202, {"responses": 3, "conversations": 1})
    assert [text for text, _ in once(gone.delivered())] == ["first #1", "second #1", "second #2"]
    assert once(gone.delivered())[0][1] == gone.got[0][1], "the same webhook-id as the answer of 410"
    triggers = {a["trigger"] for a in client.call("GET", "/deliveries", status="delivered")[1]["attempts"]}
    assert triggers == {"recover"}
