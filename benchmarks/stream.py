"""The stream in the local stack: how soon a bot response reaches a stream client, beside the same response's
webhook delivery in the same run, and 100 stream clients over 20 conversations with nothing lost or misordered.

Run: .venv/bin/python benchmarks/stream.py  (or `make bench`). It starts `python -m devstack` as `make dev` does,
with the bot and receiver of benchmarks/local_stack.py, and plays the bot itself: each response is a POST to
/bot/responses/{secret}. Both paths start at that POST: the webhook's through the delivery queue, the stream's
through the responses log, the stream queue and @connections.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import urllib3
from local_stack import BOT_SECRET, CLIENT_TOKEN, Bot, Receiver, message, ms, percentile, post, start_stack
from websockets.sync.client import ClientConnection, connect

LATENCY_RUNS = 40
CONVERSATIONS = 20
CLIENTS_PER_CONVERSATION = 5
RESPONSES_PER_CONVERSATION = 20
CLIENT_ID = CLIENT_TOKEN.partition(".")[0]
_http = urllib3.PoolManager(maxsize=64, timeout=30, retries=False)


class StreamClient:
    """A browser's socket: each frame's response text and id, and when it came."""

    def __init__(self, url: str) -> None:
        self.texts: list[str] = []
        self.ids: list[str] = []
        self.arrived: dict[str, float] = {}
        self._socket: ClientConnection = connect(url, compression=None)
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for data in self._socket:
            frame = json.loads(data)
            if frame.get("event") != "response":
                continue
            with self._changed:
                text = frame["response"]["payload"]["text"]
                self.arrived.setdefault(text, time.perf_counter())
                self.texts.append(text)
                self.ids.append(frame["id"])
                self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(set(self.ids)) >= count, timeout):
                raise RuntimeError(f"a stream client has {len(set(self.ids))} of {count} responses after {timeout} s")

    def close(self) -> None:
        self._socket.close()


def open_conversation(api_url: str, receiver: Receiver, conversation: str) -> dict[str, Any]:
    """The conversation started by a first message (its reply recorded), and a token answer with its watermark."""
    post(f"{api_url}/messages", message(conversation, f"start-{conversation}"), CLIENT_TOKEN)
    receiver.wait_for([f"start-{conversation}"])
    path = f"/conversations/{quote(conversation)}"
    headers = {"authorization": f"Bearer {CLIENT_TOKEN}"}
    recorded: list[Any] = []
    while not recorded:  # the webhook came first: the responses log may still be writing it
        answer = _http.request("GET", f"{api_url}{path}/responses?wait=5", headers=headers).json()
        recorded = answer["responses"]
    token = _http.request("POST", f"{api_url}{path}/tokens", json={"userId": "user-1"}, headers=headers).json()
    return {**token, "after": answer["watermark"]}


def bot_says(api_url: str, conversation: str, text: str) -> float:
    """POST one bot response; the time it was sent."""
    sent = time.perf_counter()
    response = {
        "type": "text",
        "payload": {"text": text},
        "conversationId": f"{CLIENT_ID}:{conversation}",
        "botpressUserId": "bp-user",
        "botpressMessageId": text,
        "botpressConversationId": "bp-conversation",
    }
    answer = _http.request("POST", f"{api_url}/bot/responses/{BOT_SECRET}", json=response)
    if answer.status != 200:
        raise RuntimeError(f"POST /bot/responses: {answer.status} {answer.data[:200]!r}")
    return sent


def main() -> None:
    bot, receiver = Bot(), Receiver()
    process, api_url = start_stack(bot, receiver)
    clients: list[StreamClient] = []
    try:
        # Latency: one conversation, one stream client, each response after the previous one reached both.
        token = open_conversation(api_url, receiver, "latency")
        client = StreamClient(f"{token['streamUrl']}&after={token['after']}")
        clients.append(client)
        stream, webhook = [], []
        for n in range(-5, LATENCY_RUNS):  # the first five warm the functions' paths
            text = f"latency-{n}"
            sent = bot_says(api_url, "latency", text)
            receiver.wait_for([text])
            client.wait_for(n + 6)
            if n >= 0:
                stream.append(client.arrived[text] - sent)
                webhook.append(receiver.arrived[text] - sent)

        # Fan-out: 100 clients over 20 conversations; each conversation's responses sent in order, all at once.
        names = [f"fan-{c}" for c in range(CONVERSATIONS)]
        with ThreadPoolExecutor(CONVERSATIONS) as pool:
            tokens = list(pool.map(lambda name: open_conversation(api_url, receiver, name), names))
        fans = {
            name: [StreamClient(f"{t['streamUrl']}&after={t['after']}") for _ in range(CLIENTS_PER_CONVERSATION)]
            for name, t in zip(names, tokens, strict=True)
        }
        clients += [c for group in fans.values() for c in group]
        texts = {name: [f"{name}-{i}" for i in range(RESPONSES_PER_CONVERSATION)] for name in names}

        def converse(name: str) -> None:
            for text in texts[name]:
                bot_says(api_url, name, text)

        started = time.perf_counter()
        with ThreadPoolExecutor(CONVERSATIONS) as pool:
            list(pool.map(converse, names))
        all_texts = [text for group in texts.values() for text in group]
        receiver.wait_for(all_texts)
        webhooks_done = max(receiver.arrived[text] for text in all_texts) - started
        for group in fans.values():
            for fan in group:
                fan.wait_for(RESPONSES_PER_CONVERSATION)
        streams_done = max(fan.arrived[text] for name, group in fans.items() for fan in group for text in texts[name])
        streams_done -= started
    finally:
        for client in clients:
            client.close()
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)

    p50_stream, p50_webhook = statistics.median(stream), statistics.median(webhook)
    print(f"stream, local stack: {LATENCY_RUNS} responses, from the bot's POST to the frame / to the webhook receiver")
    print(
        f"  stream   p50 {ms(p50_stream)}   p95 {ms(percentile(stream, 0.95))}\n"
        f"  webhook  p50 {ms(p50_webhook)}   p95 {ms(percentile(webhook, 0.95))}\n"
        f"  stream / webhook, p50: {p50_stream / p50_webhook:.2f} (goal: at most 1)"
    )
    lost = misordered = repeated = 0
    for name, group in fans.items():
        for fan in group:
            lost += len(set(texts[name]) - set(fan.texts))
            repeated += len(fan.ids) - len(set(fan.ids))
            first_seen = list(dict.fromkeys(fan.texts))
            misordered += first_seen != texts[name]
    total = CONVERSATIONS * CLIENTS_PER_CONVERSATION
    print(
        f"  fan-out: {total} stream clients over {CONVERSATIONS} conversations, {RESPONSES_PER_CONVERSATION} responses"
        f" each: all frames in {streams_done:.2f} s against all webhooks in {webhooks_done:.2f} s"
        f" ({streams_done / webhooks_done:.2f}x); lost {lost}, misordered clients {misordered},"
        f" repeated frames {repeated}"
    )


if __name__ == "__main__":
    main()
