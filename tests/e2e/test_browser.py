"""A person at the local stack's /chat page, in a real browser: headless Chromium (Debian's) driven by Playwright.

The page is built on the browser module (relay-chat.js): it sends through POST /messages with its conversation token
and receives over the stream, a real WebSocket of the browser's own to the local stack's WebSocket server.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from playwright.sync_api import BrowserContext, Page, Route, expect, sync_playwright

import doc_examples
from parties import BOT_SECRET, CLIENT_ID, CLIENT_TOKEN, responses
from relay.models import scoped
from stack_process import ROOT, StackProcess, post_json

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download cannot work here: the system's Chromium, with nothing of its own going online.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    assert CHROMIUM.exists(), f"no {CHROMIUM}: `make test` installs Debian's chromium (apt-get install chromium)"
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert errors == [], "the page raised"


def open_chat(page: Page, stack: StackProcess) -> str:
    """Open /chat (a new conversation) once its stream is open; its conversation id."""
    page.goto(f"{stack.api_url}/chat")
    expect(page.locator("#status")).to_have_text("open")
    return parse_qs(urlsplit(page.url).query)["conversation"][0]


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_a_person_chats_and_loses_nothing_while_the_connection_is_down(stack: StackProcess, page: Page) -> None:
    page.clock.install()  # the page's timers run when the test says: its reconnection waits for the test
    conversation = open_chat(page, stack)
    bot = page.locator(".message.bot")

    say(page, "hello")
    expect(page.locator(".message.user")).to_have_text(["hello"])
    expect(bot).to_have_text(["hello #1"])

    page.clock.pause_at(time.time() + 1)  # from now on the page's timers wait: its reconnection too
    # API Gateway closes connections (after 10 idle minutes, after 2 hours): so does the local one, here.
    connection_id = re.findall(r"\$connect (\S+) → 200", stack.output)[-1]
    connections_url = re.search(r"@connections at (\S+)\)", stack.output)
    assert connections_url
    gone = urllib3.request("DELETE", f"{connections_url.group(1)}/@connections/{connection_id}")
    assert gone.status == 204
    expect(page.locator("#status")).to_have_text("reconnecting")

    say(page, "while away")
    _wait_for_recorded(stack, conversation, count=2)  # the bot's reply is in the responses log, not on the page
    expect(bot).to_have_text(["hello #1"])

    page.clock.run_for(60_000)  # the backoff ends: it reconnects with the last watermark

    expect(page.locator("#status")).to_have_text("open")
    expect(bot).to_have_text(["hello #1", "while away #1"])  # each once, in order
    stack.wait_for_output(r"stream connected .*catching_up=true")
    say(page, "back")
    expect(bot).to_have_text(["hello #1", "while away #1", "back #1"])


def test_the_page_refreshes_its_token_before_it_expires_and_goes_on_with_the_new_one(
    stack: StackProcess, page: Page
) -> None:
    page.clock.install()
    conversation = open_chat(page, stack)
    page.clock.pause_at(time.time() + 1)
    refreshed = stack.output.count("POST /tokens/refresh → 200")
    page.evaluate("chat.addEventListener('session', (event) => { window.refreshedSession = event.detail; })")

    page.clock.run_for(3600_000 - 60_000)  # the chat page's token lives an hour: a minute before its end

    stack.wait_for_output(rf"(?s)(POST /tokens/refresh → 200.*){{{refreshed + 1}}}")
    _wait_until(page, "window.refreshedSession !== undefined")  # the answer logged is not yet the answer read
    expect(page.locator("#status")).to_have_text("open")
    # The relay's new token answer is the page's session now (within the same second it may equal the old one).
    assert page.evaluate("chat.session === window.refreshedSession && chat.session.conversationId") == conversation
    say(page, "still here")
    expect(page.locator(".message.bot")).to_have_text(["still here #1"])  # sent with the new token


def test_a_message_refused_for_the_clients_rate_is_sent_again_a_random_fraction_of_a_second_after_retry_after(
    stack: StackProcess, page: Page
) -> None:
    page.clock.install()
    open_chat(page, stack)
    page.clock.pause_at(time.time() + 1)  # from now on the page's timers wait for the test: its retry too
    # The fraction of a second the page adds to Retry-After, drawn as its wait starts.
    page.evaluate("Math.random = () => { window.retryDrawn = true; return 0.9; }")
    sent: list[str] = []

    def refuse_the_first(route: Route) -> None:
        sent.append((route.request.post_data_json or {})["messageId"])
        if len(sent) > 1:
            route.continue_()
            return
        headers = {"Retry-After": "1", "RateLimit-Limit": "40", "RateLimit-Remaining": "0", "RateLimit-Reset": "2"}
        route.fulfill(status=429, headers=headers, json={"message": "client 'acme' is over its rate"})

    page.route("**/messages", refuse_the_first)
    say(page, "once more")
    _wait_until(page, "window.retryDrawn === true")

    page.clock.run_for(1000)  # Retry-After's second
    page.wait_for_timeout(500)  # (real time, for a retry sent then to reach the route)
    assert len(sent) == 1, "sent again when Retry-After ended, without the fraction"
    page.clock.run_for(900)  # and the fraction

    expect(page.locator(".message.bot")).to_have_text(["once more #1"])
    assert sent[1] == sent[0], "sent again with the same messageId"


def test_a_choice_shows_its_options_as_buttons_that_send_their_value(stack: StackProcess, page: Page) -> None:
    conversation = open_chat(page, stack)
    say(page, "a shirt, please")  # the conversation exists once the person has written
    expect(page.locator(".message.bot")).to_have_text(["a shirt, please #1"])
    choice = {
        "type": "choice",
        "payload": {
            "text": "Which size?",
            "options": [{"label": "Small", "value": "S"}, {"label": "Large", "value": "L"}],
        },
        "conversationId": scoped(CLIENT_ID, conversation),
        "botpressUserId": "bp-user",
        "botpressMessageId": "bp-choice",
        "botpressConversationId": "bp-conversation",
    }
    image = {**choice, "type": "image", "payload": {"imageUrl": f"{stack.api_url}/no-such.png", "title": "a photo"}}
    for message in (choice, {**image, "botpressMessageId": "bp-image"}):
        status, body = post_json(f"{stack.api_url}/bot/responses/{BOT_SECRET}", message)
        assert status == 200, body

    expect(page.locator(".message.bot").nth(1)).to_contain_text("Which size?")
    expect(page.locator(".message.bot img")).to_have_attribute("alt", "a photo")
    page.get_by_role("button", name="Large").click()

    expect(page.locator(".message.user")).to_have_text(["a shirt, please", "Large"])
    expect(page.locator(".message.bot").last).to_have_text("L #1")  # the bot got the option's value


def _wait_until(page: Page, condition: str, timeout: float = 10.0) -> None:
    """Until `condition` holds in the page, polled from here: the page's own timers are the test's fake clock."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition):
        assert time.monotonic() < deadline, f"not within {timeout} s: {condition}"
        time.sleep(0.05)


def _wait_for_recorded(stack: StackProcess, conversation: str, count: int) -> None:
    """Until the conversation's responses log holds `count` responses (read as its client, with a long poll)."""
    recorded: list[object] = []
    watermark = None
    deadline = time.monotonic() + 30
    while len(recorded) < count and time.monotonic() < deadline:
        if watermark:
            status, answer = responses(stack, conversation, wait=5, after=watermark)
        else:
            status, answer = responses(stack, conversation, wait=5)
        assert status == 200, answer
        recorded += answer["responses"]
        watermark = answer["watermark"]
    assert len(recorded) >= count, f"only {len(recorded)} responses recorded"


# ── the browser example (examples/browser): a page of another origin, with the smallest back end ──


@pytest.fixture(scope="module")
def example(stack: StackProcess, example_port: int) -> Iterator[int]:
    """examples/browser/backend.py started as docs/browsers.md says, for the tests' client, on the port whose
    localhost origin the stack allows."""
    shown = next(example for example in doc_examples.examples("part") if example.body.startswith("RELAY_API_URL="))
    command = shown.body.strip().replace("http://127.0.0.1:3000", stack.api_url).replace("<client token>", CLIENT_TOKEN)
    words = shlex.split(command)
    settings = dict(word.split("=", 1) for word in words if re.match(r"[A-Z_]+=", word))
    program = [word for word in words if not re.match(r"[A-Z_]+=", word)]
    backend = subprocess.Popen(
        [*program, str(example_port)], cwd=ROOT, env={**os.environ, **settings}, stdout=subprocess.PIPE, text=True
    )
    try:
        assert backend.stdout and "chat page on" in backend.stdout.readline()
        yield example_port
    finally:
        backend.terminate()
        backend.wait(10)


def test_the_example_page_of_an_allowed_origin_sends_and_shows_the_answer(example: int, page: Page) -> None:
    page.goto(f"http://localhost:{example}/")
    say(page, "hello")

    expect(page.locator("#log .bot")).to_have_text(["bot: hello #1"])
    expect(page.locator("#problem")).to_be_hidden()


def test_the_example_page_takes_a_message_only_once_its_chat_is_ready(example: int, page: Page) -> None:
    held: list[Route] = []
    page.route("**/chat-session", lambda route: held.append(route))  # the back end's token answer, held back
    page.goto(f"http://localhost:{example}/")
    for _ in range(200):  # 10 s for the page to ask its back end
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page never asked its back end for a chat session"

    # An Enter now would submit the form and reload the page, losing what was typed.
    expect(page.locator("#text")).to_be_disabled()
    held[0].continue_()
    say(page, "hello")
    expect(page.locator("#log .bot")).to_have_text(["bot: hello #1"])


def test_the_example_page_of_an_origin_the_relay_does_not_allow_says_so_on_the_page(
    stack: StackProcess, example: int, page: Page
) -> None:
    page.goto(f"http://127.0.0.1:{example}/")  # the same page, but not the origin the stack allows
    say(page, "hello")

    expect(page.locator("#problem")).to_contain_text(
        f"not sent: the relay at {stack.api_url}"
        f" does not allow this page's origin, http://127.0.0.1:{example}: add it to the stack's BrowserOrigins"
    )
