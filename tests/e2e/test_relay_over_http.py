"""The relay as a client and a bot meet it on the local stack: over HTTP only, responses verified as delivered."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from harness import Receiver
from parties import BOT_TOKEN, CLIENT_TOKEN, Bot, conversation, send
from stack_process import StackProcess


def test_a_message_reaches_the_bot_and_its_response_reaches_the_client_signed(
    stack: StackProcess, bot: Bot, receiver: Receiver
) -> None:
    chat = conversation()

    status, receipt = send(stack, chat, "where is my order?")

    assert (status, receipt["status"], receipt["conversationId"]) == (200, "forwarded", chat)
    forwarded = next(m for m in bot.forwarded if m["text"] == "where is my order?")
    assert bot.authorizations[bot.forwarded.index(forwarded)].lower() == f"bearer {BOT_TOKEN}".lower()
    assert forwarded["conversationId"] != chat and chat in forwarded["conversationId"]
    receiver.wait_for({chat: 1})
    (delivery,) = [a for a in receiver.attempts if a.conversation == chat]
    assert delivery.text == "where is my order? #1"
    assert delivery.webhook_id.startswith("msg_")
    assert receiver.unverified == []


def test_several_responses_arrive_in_the_order_the_bot_sent_them(stack: StackProcess, receiver: Receiver) -> None:
    chat = conversation()

    assert send(stack, chat, "tell me more", replies=5)[0] == 200

    receiver.wait_for({chat: 5})
    assert receiver.delivered(chat) == [f"tell me more #{n}" for n in range(1, 6)]


def test_a_repeated_message_id_is_answered_but_not_forwarded_again(
    stack: StackProcess, bot: Bot, receiver: Receiver
) -> None:
    chat = conversation()
    message_id = str(uuid.uuid4())

    first = send(stack, chat, "once", messageId=message_id)
    again = send(stack, chat, "once", messageId=message_id)

    assert (first[0], first[1]["status"]) == (200, "forwarded")
    assert (again[0], again[1]["status"]) == (200, "duplicate")
    assert sum(1 for forwarded_id in bot.forwarded_ids() if forwarded_id.endswith(message_id)) == 1
    receiver.wait_for({chat: 1})
    assert receiver.delivered(chat) == ["once #1"]


def test_a_bad_token_is_refused_and_nothing_reaches_the_bot(stack: StackProcess, bot: Bot) -> None:
    chat = conversation()

    wrong = send(stack, chat, token=CLIENT_TOKEN + "x")
    unknown = send(stack, chat, token="nobody.at-all")

    assert wrong[0] == unknown[0] == 401
    assert "invalid client token" in wrong[1]["message"]
    assert not any(chat in message["conversationId"] for message in bot.forwarded)


def test_a_receiver_failing_twice_gets_its_responses_in_order_without_holding_up_another_conversation(
    stack: StackProcess, receiver: Receiver
) -> None:
    flaky, steady = conversation(), conversation()
    # Failing until the other conversation is through: if the flaky one held it up, neither would finish.
    receiver.fail(flaky, times=2, until=lambda: len(receiver.delivered(steady)) == 3)

    assert send(stack, flaky, "flaky", replies=3)[0] == 200
    assert send(stack, steady, "steady", replies=3)[0] == 200

    receiver.wait_for({flaky: 3, steady: 3})
    assert receiver.delivered(flaky) == ["flaky #1", "flaky #2", "flaky #3"]
    assert receiver.delivered(steady) == ["steady #1", "steady #2", "steady #3"]
    flaky_attempts = [a for a in receiver.attempts if a.conversation == flaky]
    failures = [a for a in flaky_attempts if a.status == 500]
    assert len(failures) >= 2
    assert [a.status for a in flaky_attempts] == [500] * len(failures) + [204] * 3, "no response overtook the first"
    assert {a.webhook_id for a in failures} == {flaky_attempts[len(failures)].webhook_id}, "retries keep webhook-id"


def test_conversations_at_once_are_all_delivered_each_in_order(stack: StackProcess, receiver: Receiver) -> None:
    # Twice as many as each function's local containers: they are taken by several at once, and interleave.
    chats = [conversation() for _ in range(8)]

    with ThreadPoolExecutor(len(chats)) as pool:
        answers = list(pool.map(lambda chat: send(stack, chat, chat, replies=3), chats))

    assert [status for status, _ in answers] == [200] * len(chats)
    receiver.wait_for(dict.fromkeys(chats, 3))
    for chat in chats:
        assert receiver.delivered(chat) == [f"{chat} #1", f"{chat} #2", f"{chat} #3"]
