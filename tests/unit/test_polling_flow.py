"""The responses reader (GET /conversations/{id}/responses and the replies of POST ?wait) on an in-memory log
and a clock that moves only when the reader sleeps."""

from __future__ import annotations

import pytest
from memory import Clock, MemoryConversations, MemoryLog, client_response, texts

from relay.errors import InvalidRequest, UnknownConversation
from relay.flows.polling import POLL_INTERVAL_SECONDS, QUIET_SECONDS, ResponsesQuery, ResponsesReader
from relay.models import Conversation
from relay.stores.responses_log import PAGE_MAX_BYTES, PAGE_MAX_RESPONSES
from relay.watermarks import Watermarks

FOREVER = float("inf")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(clock: Clock) -> MemoryLog:
    return MemoryLog(clock)


@pytest.fixture
def reader(clock: Clock, log: MemoryLog) -> ResponsesReader:
    conversations = MemoryConversations()
    conversations.record(Conversation(client_id="acme", conversation_id="c-1", user_id="alice"))
    return ResponsesReader(
        log,  # type: ignore[arg-type]
        conversations,  # type: ignore[arg-type]
        Watermarks(lambda: "watermark key"),
        clock=clock.monotonic,
        sleep=clock.sleep,
        now=clock.wall,
    )


def say(log: MemoryLog, *texts_: str, start: int = 1, conversation: str = "c-1") -> None:
    for offset, text in enumerate(texts_):
        response = client_response(conversation, text)
        log.record(start + offset, response, response.to_json())


def read(reader: ResponsesReader, until: float = FOREVER, **query: object) -> object:
    return reader.read("acme", "c-1", ResponsesQuery.model_validate(query), until)


def test_pages_follow_the_watermark_to_the_end_with_none_skipped_or_repeated(
    reader: ResponsesReader, log: MemoryLog
) -> None:
    say(log, *(f"r{n}" for n in range(250)))
    seen: list[str] = []
    watermark = None
    for expected in (PAGE_MAX_RESPONSES, PAGE_MAX_RESPONSES, 50, 0):
        page = read(reader, after=watermark) if watermark else read(reader)
        assert len(page.responses) == expected  # type: ignore[attr-defined]
        seen += texts(page)
        watermark = page.watermark  # type: ignore[attr-defined]

    assert seen == [f"r{n}" for n in range(250)]


def test_limit_bounds_a_page(reader: ResponsesReader, log: MemoryLog) -> None:
    say(log, "a", "b", "c", "d")

    first = read(reader, limit=3)
    rest = read(reader, after=first.watermark)  # type: ignore[attr-defined]

    assert (texts(first), texts(rest)) == (["a", "b", "c"], ["d"])


def test_a_page_holds_at_most_4_mib_and_the_rest_comes_next(reader: ResponsesReader, log: MemoryLog) -> None:
    big = "x" * (PAGE_MAX_BYTES // 3 - 1000)  # three fit, a fourth does not
    say(log, *(f"{n}{big}" for n in range(5)))

    first = read(reader)
    rest = read(reader, after=first.watermark)  # type: ignore[attr-defined]

    assert [text[0] for text in texts(first)] == ["0", "1", "2"]
    assert [text[0] for text in texts(rest)] == ["3", "4"]


def test_responses_arriving_between_reads_are_each_read_once(
    reader: ResponsesReader, log: MemoryLog, clock: Clock
) -> None:
    say(log, "a", "b")
    seen = texts(first := read(reader))
    say(log, "c", start=3)
    seen += texts(second := read(reader, after=first.watermark))  # type: ignore[attr-defined]
    clock.at(0.6, lambda: say(log, "d", "e", start=4))
    seen += texts(third := read(reader, after=second.watermark, wait=5))  # type: ignore[attr-defined]
    seen += texts(read(reader, after=third.watermark))  # type: ignore[attr-defined]

    assert seen == ["a", "b", "c", "d", "e"]


def test_a_long_poll_answers_when_a_response_is_recorded(reader: ResponsesReader, log: MemoryLog, clock: Clock) -> None:
    clock.at(2.1, lambda: say(log, "late"))

    page = read(reader, wait=10)

    assert texts(page) == ["late"]
    assert 2.1 <= clock.now <= 2.1 + POLL_INTERVAL_SECONDS


def test_a_long_poll_with_nothing_new_ends_at_wait_with_the_same_watermark(
    reader: ResponsesReader, log: MemoryLog, clock: Clock
) -> None:
    say(log, "a")
    first = read(reader)

    page = read(reader, after=first.watermark, wait=3)  # type: ignore[attr-defined]

    assert (texts(page), page.watermark, clock.now) == ([], first.watermark, 3)  # type: ignore[attr-defined]


def test_a_long_poll_ends_when_the_invocation_would_run_out(reader: ResponsesReader, clock: Clock) -> None:
    read(reader, until=1.5, wait=20)

    assert clock.now == 1.5


def test_an_unknown_conversation_and_a_foreign_watermark_are_refused(reader: ResponsesReader) -> None:
    with pytest.raises(UnknownConversation):
        reader.read("acme", "c-2", ResponsesQuery(), FOREVER)
    watermark = Watermarks(lambda: "watermark key").issue("acme", "c-2", 0)
    with pytest.raises(InvalidRequest) as refused:
        read(reader, after=watermark)
    assert refused.value.field == "after"


def test_replies_answer_once_the_bot_is_quiet_a_second(reader: ResponsesReader, log: MemoryLog, clock: Clock) -> None:
    clock.at(0.3, lambda: say(log, "one"))
    clock.at(0.9, lambda: say(log, "two", start=2))
    clock.at(1.5, lambda: say(log, "three", start=3))

    page = reader.replies("acme", "c-1", 0, until=25)

    assert texts(page) == ["one", "two", "three"]
    assert 1.5 + QUIET_SECONDS <= clock.now <= 1.5 + QUIET_SECONDS + POLL_INTERVAL_SECONDS


def test_the_quiet_second_counts_from_when_the_log_recorded_the_response(
    reader: ResponsesReader, log: MemoryLog, clock: Clock
) -> None:
    """A response the reader notices late (recorded at 0.2 s, seen at 1.0 s) does not stretch the wait."""
    response = client_response("c-1", "early")
    clock.at(1.0, lambda: log.record(1, response, response.to_json(), recorded_at=clock.wall() - 0.8))

    page = reader.replies("acme", "c-1", 0, until=25)

    assert texts(page) == ["early"]
    assert clock.now == pytest.approx(0.2 + QUIET_SECONDS)


def test_a_full_page_of_replies_answers_at_once(reader: ResponsesReader, log: MemoryLog, clock: Clock) -> None:
    clock.at(0.5, lambda: say(log, *(f"r{n}" for n in range(PAGE_MAX_RESPONSES + 5))))

    page = reader.replies("acme", "c-1", 0, until=25)

    assert len(page.responses) == PAGE_MAX_RESPONSES
    assert clock.now == 0.5
    assert texts(reader.read("acme", "c-1", ResponsesQuery(after=page.watermark), FOREVER)) == [
        f"r{n}" for n in range(PAGE_MAX_RESPONSES, PAGE_MAX_RESPONSES + 5)
    ]


def test_a_bot_that_never_stops_is_answered_at_until(reader: ResponsesReader, log: MemoryLog, clock: Clock) -> None:
    for n in range(20):
        clock.at(0.4 * (n + 1), lambda n=n: say(log, f"r{n}", start=n + 1))  # type: ignore[misc]

    page = reader.replies("acme", "c-1", 0, until=3)

    assert clock.now == 3
    assert texts(page) == [f"r{n}" for n in range(7)]  # those recorded by 3 s (at 0.4 … 2.8 s)


def test_replies_start_after_the_given_position(reader: ResponsesReader, log: MemoryLog, clock: Clock) -> None:
    say(log, "before")
    clock.at(0.2, lambda: say(log, "after", start=2))

    page = reader.replies("acme", "c-1", reader.position("acme", "c-1"), until=25)

    assert texts(page) == ["after"]
