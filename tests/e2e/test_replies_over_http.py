"""Replies without a webhook on the local stack, over HTTP only: POST /messages?wait and polling with a watermark."""

from __future__ import annotations

import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from parties import Bot, conversation, responses, send
from relay.flows.polling import QUIET_SECONDS
from stack_process import StackProcess

RUNS = int(os.environ.get("REPLY_LATENCY_RUNS", "1"))
"""`make bench` asks for more: `make test` checks the answers, the figures are the bench's."""


def texts(body: dict[str, Any]) -> list[str]:
    return [response["payload"]["text"] for response in body["responses"]]


def read_all(stack: StackProcess, chat: str, expected: int, **query: Any) -> list[str]:
    """Poll as a client would, passing each watermark back, until `expected` responses came (or one answer is
    empty after a long poll): every response seen, in the order seen."""
    seen: list[str] = []
    watermark: str | None = None
    while len(seen) < expected:
        status, body = responses(stack, chat, wait=10, **({"after": watermark} if watermark else {}), **query)
        assert status == 200, body
        if not body["responses"]:
            break
        seen += texts(body)
        watermark = body["watermark"]
    return seen


def test_wait_answers_with_the_bots_responses_in_order_once_it_is_quiet(stack: StackProcess, bot: Bot) -> None:
    chat = conversation()
    answered = bot.hold(chat)

    status, body = send(
        stack, chat, "hi", query="wait=25", payload={"text": "hi", "replies": 3, "gap": 0.3, "late": True}
    )
    answered.set()

    assert status == 200, body
    assert body["status"] == "forwarded"
    assert texts(body) == ["hi #1", "hi #2", "hi #3"], "in order, and before the bot's late reply"
    assert {response["conversationId"] for response in body["responses"]} == {chat}


def test_wait_with_a_silent_bot_answers_an_empty_list(stack: StackProcess) -> None:
    chat = conversation()

    status, body = send(stack, chat, "quiet", replies=0, query="wait=1")

    assert (status, body["responses"]) == (200, [])
    assert responses(stack, chat, after=body["watermark"])[1]["responses"] == []


def test_pages_of_limit_pass_every_response_once(stack: StackProcess) -> None:
    chat = conversation()
    send(stack, chat, "page", replies=5)

    assert read_all(stack, chat, 5, limit=2) == [f"page #{n}" for n in range(1, 6)]


def test_pollers_of_many_conversations_see_each_response_once_in_order(stack: StackProcess) -> None:
    chats = [conversation() for _ in range(8)]

    # Three pollers at a time: the local stack runs 4 containers of the client API, and a waiting poll holds one.
    with ThreadPoolExecutor(len(chats)) as senders, ThreadPoolExecutor(3) as pollers:
        sent = {
            chat: senders.submit(send, stack, chat, chat, payload={"text": chat, "replies": 4, "gap": 0.05})
            for chat in chats
        }
        seen = list(pollers.map(lambda chat: sent[chat].result() and read_all(stack, chat, 4, limit=3), chats))

    assert [sent[chat].result()[0] for chat in chats] == [200] * len(chats)
    assert seen == [[f"{chat} #{n}" for n in range(1, 5)] for chat in chats]


def test_a_long_poll_is_answered_when_a_response_arrives(stack: StackProcess, bot: Bot) -> None:
    chat = conversation()
    status, body = send(stack, chat, "first", replies=0)
    assert status == 200, body
    watermark = responses(stack, chat)[1]["watermark"]
    answered = bot.hold(chat)
    waiting: list[tuple[int, Any]] = []
    poll = threading.Thread(target=lambda: waiting.append(responses(stack, chat, after=watermark, wait=20)))
    poll.start()

    send(stack, chat, "now", payload={"text": "now", "late": True})
    poll.join()
    answered.set()

    assert texts(waiting[0][1]) == ["now #1"], "answered before the bot's late reply, not at 20 s"


def test_refusals_name_what_is_wrong(stack: StackProcess) -> None:
    chat = conversation()
    send(stack, chat, replies=0)

    assert responses(stack, conversation())[0] == 404
    assert responses(stack, chat, token="")[0] == 401
    for query, named in [({"wait": "21"}, "wait"), ({"limit": "0"}, "limit"), ({"after": "nope"}, "after")]:
        status, body = responses(stack, chat, **query)
        assert (status, body["errors"][0]["field"]) == (400, named)
    status, body = send(stack, chat, query="wait=26")
    assert (status, body["errors"][0]["field"]) == (400, "wait")


def timed_poll(stack: StackProcess, chat: str, watermark: str, out: list[tuple[float, int, Any]]) -> None:
    status, page = responses(stack, chat, after=watermark, wait=20)
    out.append((time.monotonic(), status, page))


def test_latency_of_replies_figures_for_the_note(stack: StackProcess, bot: Bot) -> None:
    """From the bot's last response to the answer of a POST ?wait (goal: the quiet moment + 200 ms), and from a
    response's arrival to a waiting GET's answer (goal: 300 ms), against a plain GET's round trip in the same run.
    `make bench` prints them."""
    waits, polls, plain = [], [], []
    for run in range(RUNS):
        chat = conversation()
        status, body = send(stack, chat, "w", query="wait=10", payload={"text": "w", "replies": 3, "gap": 0.1})
        answered = time.monotonic()
        assert (status, texts(body)) == (200, ["w #1", "w #2", "w #3"]), body
        waits.append(answered - bot.last_reply_at[chat] - QUIET_SECONDS)

        waiting: list[tuple[float, int, Any]] = []
        poller = threading.Thread(target=timed_poll, args=(stack, chat, body["watermark"], waiting))
        poller.start()
        time.sleep(0.3)  # the poll is waiting
        send(stack, chat, f"p{run}", replies=1)
        poller.join()
        answered, status, page = waiting[0]
        assert (status, texts(page)) == (200, [f"p{run} #1"]), page
        polls.append(answered - bot.last_reply_at[chat])

        started = time.monotonic()
        assert responses(stack, chat)[0] == 200
        plain.append(time.monotonic() - started)

    baseline = statistics.median(plain)
    print(f"\nreplies on the local stack, {RUNS} runs; baseline: a plain GET's round trip, {baseline * 1000:.0f} ms")
    for name, figures in [
        (f"POST ?wait: bot's last response to the answer, minus the {QUIET_SECONDS:g} s quiet moment", waits),
        ("waiting GET: a response's arrival to the answer", polls),
    ]:
        median, worst = statistics.median(figures), max(figures)
        print(f"  {name}: median {median * 1000:.0f} ms ({median / baseline:.1f}x baseline), max {worst * 1000:.0f} ms")
