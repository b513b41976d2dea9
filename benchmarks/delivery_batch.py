"""A batch of 10 conversations against a batch of 1, the receiver answering in 200 ms, with a sequential baseline.

Run: .venv/bin/python benchmarks/delivery_batch.py  (moto for AWS; a real receiver on 127.0.0.1)

The figure is the ratio of one invocation's time for a batch of 10 responses in 10 conversations to
its time for a batch of 1: the delivery flow as built (conversations in parallel), then the same flow
with one conversation at a time, measured in the same run. The goal is at most 1.2x.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import conftest  # noqa: E402,F401 - sets the fake AWS credentials and region
from moto import mock_aws  # noqa: E402

from devstack.lambdas import sqs_event  # noqa: E402
from harness import Receiver, Relay, local_server  # noqa: E402

RECEIVER_SECONDS = 0.2
RUNS = 5


def invocation_seconds(relay: Relay, conversations: int) -> float:
    """One invocation's time for a batch holding one response of each of `conversations` conversations."""
    queue = relay.stack.ref("DeliveryQueue")
    for n in range(conversations):
        body = {
            "type": "text",
            "payload": {"text": f"bench {n}"},
            "conversationId": f"c{n}",
            "botpressMessageId": str(uuid.uuid4()),
            "clientId": "acme",
            "userId": "u",
        }
        relay.sqs.send_message(
            QueueUrl=queue,
            MessageBody=json.dumps(body),
            MessageGroupId=f"acme:c{n}",
            MessageDeduplicationId=str(uuid.uuid4()),
        )
    messages = relay.sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == conversations
    event = sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:delivery.fifo")
    started = time.perf_counter()
    assert relay.delivery.invoke(event)["batchItemFailures"] == []
    seconds = time.perf_counter() - started
    for message in messages:
        relay.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return seconds


def ratio(relay: Relay) -> float:
    one = statistics.median(invocation_seconds(relay, 1) for _ in range(RUNS))
    ten = statistics.median(invocation_seconds(relay, 10) for _ in range(RUNS))
    return ten / one


def main() -> None:
    with mock_aws():
        import boto3

        bot, receiver = local_server(), local_server(threaded=True)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        relay = Relay(boto3.Session(region_name="us-east-1"), next(bot), parameters={"LogLevel": "WARNING"})
        server = next(receiver)
        client, _ = relay.add_client("acme", response_url=server.url_for("/hook"))
        taker = Receiver(server, {"acme": client.webhook_secret}, pause=RECEIVER_SECONDS)
        invocation_seconds(relay, 1)  # warm: connections and the client record

        concurrent = ratio(relay)
        flow = relay.delivery.module.delivery
        flow._conversations = ThreadPoolExecutor(max_workers=1)  # the baseline: one conversation at a time
        sequential = ratio(relay)
        assert not taker.unverified and all(a.status == 204 for a in taker.attempts)

    print(f"delivery, batch of 10 conversations / batch of 1, receiver answering in {RECEIVER_SECONDS * 1000:.0f} ms:")
    print(f"  conversations in parallel (as built): {concurrent:.2f}x   (goal <= 1.2x)")
    print(f"  one conversation at a time (baseline): {sequential:.2f}x")


if __name__ == "__main__":
    main()
