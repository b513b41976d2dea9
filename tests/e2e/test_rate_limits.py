"""Each client's rate on the local stack (which has no API throttling of its own), over HTTP: two clients an
operator made with relay-clients, one flooding, one not."""

from __future__ import annotations

import json
import secrets
import time
import uuid

import urllib3

from parties import Bot, relay_clients
from stack_process import StackProcess

RATE = 1  # request per second, bursts of 2: the test lasts a second or two
MOST = 60  # requests the flood sends at most, should nothing be refused
_http = urllib3.PoolManager(maxsize=16, timeout=30, retries=False)


def operator_creates(stack: StackProcess, client_id: str, rate: int) -> str:
    """`relay-clients --dev create` and `set-rate`, as an operator would; the client's token."""
    created = relay_clients(stack, "create", "--id", client_id, "--name", client_id)
    relay_clients(stack, "set-rate", client_id, str(rate))
    return next(line.split()[-1] for line in created.splitlines() if "bearer token:" in line)


def post(stack: StackProcess, token: str, message_id: str) -> urllib3.BaseHTTPResponse:
    body = {"userId": "u", "messageId": message_id, "conversationId": "c-1", "type": "text", "text": "hi"}
    return _http.request(
        "POST",
        f"{stack.api_url}/messages",
        body=json.dumps(body),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )


def test_a_client_flooding_gets_429s_with_the_headers_and_another_client_of_the_same_rate_all_it_sends(
    stack: StackProcess, bot: Bot
) -> None:
    run = secrets.token_hex(3)
    flooding, steady = f"flood-{run}", f"steady-{run}"
    tokens = {client: operator_creates(stack, client, RATE) for client in (flooding, steady)}

    # The flooding client sends one message after another, as fast as the stack answers, until it is refused: one
    # container's worth (a flood from several threads would wait for containers to start, not for the rate).
    answers: list[tuple[str, urllib3.BaseHTTPResponse]] = []
    began = time.monotonic()
    while len(answers) < MOST and (not answers or answers[-1][1].status == 200):
        message_id = str(uuid.uuid4())
        answers.append((message_id, post(stack, tokens[flooding], message_id)))
    seconds = time.monotonic() - began
    # Then the steady client, of the same rate, sends its whole burst.
    steady_answers = [post(stack, tokens[steady], str(uuid.uuid4())) for _ in range(2 * RATE)]

    *admitted, (refused, answer) = answers
    assert answer.status == 429, f"{len(answers)} sent in {seconds:.1f} s, none refused"
    assert len(admitted) <= 2 * RATE + RATE * seconds  # the burst, and the rate for as long as it took
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.headers["RateLimit-Limit"] == str(2 * RATE)
    assert answer.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(answer.headers["RateLimit-Reset"]) <= 2
    assert "over its rate" in answer.json()["message"]
    assert [answer.status for answer in steady_answers] == [200] * 2 * RATE

    forwarded = bot.forwarded_ids()
    assert all(f"{flooding}:{m}" in forwarded for m, _ in admitted)
    assert f"{flooding}:{refused}" not in forwarded, "a refused message is never forwarded"

    # One request's worth of the rate after the flood, its bucket has room again: the refused message sent again is
    # forwarded, not answered as a repeat of anything.
    time.sleep(1 / RATE)
    again = post(stack, tokens[flooding], refused)
    assert (again.status, again.json()["status"]) == (200, "forwarded")
