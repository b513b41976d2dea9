"""Replies without a webhook: GET /conversations/{id}/responses (with a watermark, long polls) and POST ?wait,
through the real handlers, with the responses log fed by its queue in the background as Lambda would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from harness import Relay, Response, message

LATE = "late"


@contextmanager
def recording(relay: Relay) -> Iterator[None]:
    """The responses log's event source, polling its queue in the background."""
    stop = threading.Event()
    thread = threading.Thread(target=relay.log_mapping.run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def in_background(action: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(action()), daemon=True)
    thread.start()
    return thread, result


def texts(answer: Response) -> list[str]:
    return [response["payload"]["text"] for response in answer.json()["responses"]]


def forwarded_when_there(relay: Relay, count: int = 1) -> dict[str, Any]:
    while len(relay.forwarded()) < count:
        time.sleep(0.01)
    return relay.forwarded()[count - 1]


def reply_unless_answered(relay: Relay, forwarded: dict[str, Any], answered: threading.Event) -> None:
    """The bot says one more thing if the client has not had its answer within 10 s."""
    if not answered.wait(10):
        relay.reply({**forwarded, "text": LATE})


@pytest.fixture
def acme(relay: Relay) -> str:
    return relay.add_client("acme")[1]


def test_wait_answers_with_three_responses_in_order_once_the_bot_is_quiet(relay: Relay, acme: str) -> None:
    answered = threading.Event()

    def bot() -> None:
        forwarded = forwarded_when_there(relay)
        for n in (1, 2, 3):  # closer together than the quiet moment
            relay.reply({**forwarded, "text": f"hi #{n}"})
            time.sleep(0.3)
        reply_unless_answered(relay, forwarded, answered)

    with recording(relay):
        thread, _ = in_background(bot)
        answer = relay.post_message(acme, message("c-1", text="hi"), query="wait=25")
        answered.set()
        thread.join()

    assert answer.status == 200, answer
    assert answer.json()["status"] == "forwarded"
    assert texts(answer) == ["reply 1 to hi #1", "reply 1 to hi #2", "reply 1 to hi #3"]  # and not the late one
    after = relay.get_responses(acme, "c-1", after=answer.json()["watermark"])
    assert texts(after) in (["reply 1 to late"], []), "the watermark continues after the three"


def test_wait_with_a_silent_bot_answers_nothing_when_wait_is_over(relay: Relay, acme: str) -> None:
    started = time.monotonic()
    answer = relay.post_message(acme, message("c-1"), query="wait=1")

    assert answer.status == 200, answer
    assert answer.json()["responses"] == []
    assert time.monotonic() - started >= 1
    assert relay.get_responses(acme, "c-1", after=answer.json()["watermark"]).json()["responses"] == []


def test_a_repeat_with_wait_answers_duplicate_with_the_responses_since_the_first_forward(
    relay: Relay, acme: str
) -> None:
    relay.post_message(acme, message("c-1", text="earlier"))
    relay.reply(relay.forwarded()[0], 2)  # before the message: not its responses
    relay.record()
    sent = message("c-1", text="hi")
    first = relay.post_message(acme, sent, query="wait=0.1")
    relay.reply(relay.forwarded()[1], 3)
    relay.record()

    again = relay.post_message(acme, sent, query="wait=5")

    assert first.json()["status"] == "forwarded"
    assert again.status == 200 and again.json()["status"] == "duplicate"
    assert texts(again) == ["reply 1 to hi", "reply 2 to hi", "reply 3 to hi"]
    assert len(relay.forwarded()) == 2


def test_without_wait_the_receipt_is_as_before(relay: Relay, acme: str) -> None:
    answer = relay.post_message(acme, message("c-1", message_id="m-1"), query="wait=0")

    assert answer.json() == {"messageId": "m-1", "conversationId": "c-1", "status": "forwarded"}


def test_pages_of_limit_with_the_watermark_skip_and_repeat_nothing(relay: Relay, acme: str) -> None:
    relay.post_message(acme, message("c-1", text="hi"))
    relay.reply(relay.forwarded()[0], 7)
    relay.record()

    pages, watermark = [], None
    while True:
        page = relay.get_responses(acme, "c-1", limit=3, **({"after": watermark} if watermark else {}))
        assert page.status == 200, page
        pages.append(texts(page))
        if not pages[-1]:
            break
        watermark = page.json()["watermark"]

    assert pages == [[f"reply {n} to hi" for n in range(start, min(start + 3, 8))] for start in (1, 4, 7)] + [[]]
    assert page.json()["watermark"] == watermark, "nothing new: the watermark stays"


def test_a_poller_passing_the_watermark_back_sees_each_response_once_in_order(relay: Relay, acme: str) -> None:
    conversations = [f"c-{n}" for n in range(6)]
    for conversation in conversations:
        relay.post_message(acme, message(conversation, text=conversation))
    forwarded = relay.forwarded()
    rounds = 5

    def bot() -> None:  # the conversations' responses interleaved, while the poller reads
        for _ in range(rounds):
            for each in forwarded:
                relay.reply(each)

    seen: dict[str, list[str]] = {conversation: [] for conversation in conversations}
    watermarks: dict[str, str] = {}
    with recording(relay):
        thread, _ = in_background(bot)
        deadline = time.monotonic() + 60
        while sum(map(len, seen.values())) < rounds * len(conversations) and time.monotonic() < deadline:
            for conversation in conversations:
                query = {"after": watermarks[conversation]} if conversation in watermarks else {}
                page = relay.get_responses(acme, conversation, limit=2, **query)
                if page.status == 429:  # polling faster than the client's rate: waits as told, as a poller should
                    time.sleep(int(page.headers["retry-after"]))
                    continue
                seen[conversation] += texts(page)
                watermarks[conversation] = page.json()["watermark"]
        thread.join()

    assert seen == {c: [f"reply 1 to {c}"] * rounds for c in conversations}
    ids = [r["botpressMessageId"] for c in conversations for r in relay.get_responses(acme, c).json()["responses"]]
    assert len(set(ids)) == len(ids) == rounds * len(conversations)


def test_a_long_poll_is_answered_when_a_response_arrives(relay: Relay, acme: str) -> None:
    relay.post_message(acme, message("c-1", text="hi"))
    forwarded = relay.forwarded()[0]
    empty = relay.get_responses(acme, "c-1").json()["watermark"]
    answered = threading.Event()

    def bot() -> None:
        time.sleep(0.5)  # the poll is waiting by now (if not, it finds the response at once: still right)
        relay.reply(forwarded)
        reply_unless_answered(relay, forwarded, answered)

    with recording(relay):
        thread, _ = in_background(bot)
        answer = relay.get_responses(acme, "c-1", after=empty, wait=20)
        answered.set()
        thread.join()

    assert texts(answer) == ["reply 1 to hi"]  # answered before the bot's late reply, not at 20 s


def test_a_long_poll_with_nothing_new_answers_empty_with_the_same_watermark(relay: Relay, acme: str) -> None:
    relay.post_message(acme, message("c-1"))
    relay.reply(relay.forwarded()[0])
    relay.record()
    watermark = relay.get_responses(acme, "c-1").json()["watermark"]

    answer = relay.get_responses(acme, "c-1", after=watermark, wait=0.5)

    assert answer.json() == {"responses": [], "watermark": watermark}


def test_a_conversation_id_of_any_characters_is_found_percent_encoded(relay: Relay, acme: str) -> None:
    odd = "order 42/ü?#%"
    relay.post_message(acme, message(odd, text="odd"))
    relay.reply(relay.forwarded()[0])
    relay.record()

    assert texts(relay.get_responses(acme, odd)) == ["reply 1 to odd"]


def test_only_the_clients_own_conversations_are_read_and_only_with_its_token(relay: Relay, acme: str) -> None:
    _, globex = relay.add_client("globex")
    relay.post_message(globex, message("shared-id"))
    relay.reply(relay.forwarded()[0])
    relay.record()

    assert relay.get_responses(acme, "shared-id").status == 404
    assert relay.get_responses(acme, "never-used").status == 404
    assert relay.get_responses(acme, "never-used", wait=1).status == 404
    assert relay.get_responses(None, "shared-id").status == 401
    assert relay.get_responses(globex + "x", "shared-id").status == 401
    assert texts(relay.get_responses(globex, "shared-id")) == ["reply 1 to hello"]


BAD_QUERIES = [
    ({"wait": "21"}, "wait"),
    ({"wait": "-1"}, "wait"),
    ({"wait": "soon"}, "wait"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "2.5"}, "limit"),
    ({"after": "not-a-watermark"}, "after"),
    ({"after": ""}, "after"),
    ({"since": "yesterday"}, "since"),  # not a parameter of the route
]


def test_bad_query_parameters_are_refused_naming_them(relay: Relay, acme: str) -> None:
    _, globex = relay.add_client("globex")
    for token in (acme, globex):
        for conversation in ("c-1", "c-2"):
            relay.post_message(token, message(conversation))
    of_c2 = relay.get_responses(acme, "c-2").json()["watermark"]
    of_globex = relay.get_responses(globex, "c-1").json()["watermark"]
    others = [({"after": of_c2}, "after"), ({"after": of_globex}, "after")]

    for query, named in BAD_QUERIES + others:
        answer = relay.get_responses(acme, "c-1", **query)
        assert answer.status == 400, (query, answer)
        assert answer.json()["errors"][0]["field"] == named
        assert f"query parameter {named}" in answer.json()["message"]


def test_a_bad_wait_on_post_is_refused_and_nothing_is_forwarded(relay: Relay, acme: str) -> None:
    for wait in ("26", "-1", "later", "nan"):
        answer = relay.post_message(acme, message("c-1"), query=f"wait={wait}")
        assert answer.status == 400, (wait, answer)
        assert answer.json()["errors"][0]["field"] == "wait"
    unknown = relay.post_message(acme, message("c-1"), query="wiat=5")
    assert (unknown.status, unknown.json()["errors"][0]["field"]) == (400, "wiat")
    assert relay.forwarded() == []
