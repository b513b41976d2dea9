"""One client's receiver never slows another's deliveries: a hanging one holds up only its own responses, and a dead
one's backlog leaves the shared delivery queue (parked in the responses log) and comes back in order when it is back.

On the template's resources in moto, through the local stack's own event source mapping (devstack.esm), as `make dev`
runs them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import boto3
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from devstack.esm import EventSourceMapping
from devstack.lambdas import LocalFunction
from harness import Receiver, Relay, local_server, message
from relay.endpoints import EndpointState
from relay.models import ClientResponse
from relay.stores.delivery_state import DeliveryState
from relay_clients import cli


def say(relay: Relay, token: str, conversation: str, text: str, replies: int = 1) -> list[str]:
    """The client sends `text` in the conversation; the bot answers it with `replies` responses."""
    assert relay.post_message(token, message(conversation=conversation, text=text)).status == 200
    return [r["payload"]["text"] for r in relay.reply(relay.forwarded()[-1], replies)]


def in_flight(relay: Relay, count: int, timeout: float = 20) -> None:
    """Until the delivery queue has `count` messages received and not yet deleted or made visible again."""
    url = relay.stack.ref("DeliveryQueue")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = relay.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )
        if int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"not {count} in flight within {timeout} s")


class Hanging:
    """A receiver that takes the connection and does not answer until the test lets it."""

    def __init__(self, server: HTTPServer) -> None:
        self.url = server.url_for("/hook")
        self.arrived = threading.Semaphore(0)
        self.answered = 0
        self.release = threading.Event()
        server.expect_request("/hook", method="POST").respond_with_handler(self._take)

    def _take(self, request: Request) -> Response:
        self.arrived.release()
        self.release.wait(60)
        self.answered += 1
        return Response(status=204)


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    for server in local_server(threaded=True):
        receiver = Hanging(server)
        yield receiver
        receiver.release.set()


@pytest.fixture
def fast() -> Iterator[HTTPServer]:
    yield from local_server(threaded=True)


def test_a_healthy_conversations_next_response_is_handed_out_while_a_neighbours_post_in_its_batch_hangs(
    aws: boto3.Session, bot: HTTPServer, fast: HTTPServer, hanging: Hanging
) -> None:
    bot.expect_request("/webhook", method="POST").respond_with_json({})
    # A timeout longer than the test: the hanging POST cannot return before it ends.
    relay = Relay(aws, bot, parameters={"WebhookTimeoutSeconds": "30"})
    healthy, healthy_token = relay.add_client("healthy", response_url=fast.url_for("/hook"))
    _, neighbour_token = relay.add_client("neighbour", response_url=hanging.url)
    deliveries = Receiver(fast, {"healthy": healthy.webhook_secret})
    say(relay, neighbour_token, "n", "n")
    (first,) = say(relay, healthy_token, "h", "h1")
    batch = threading.Thread(target=relay.mapping.poll)  # one batch: the neighbour's response and the healthy one
    batch.start()
    try:
        assert hanging.arrived.acquire(timeout=20), "the neighbour's POST is under way"
        deliveries.wait_for({"h": 1}, timeout=20)
        in_flight(relay, 1)  # the neighbour's alone: the healthy one is done with
        (second,) = say(relay, healthy_token, "h", "h2")
        handed_out = relay.sqs.receive_message(
            QueueUrl=relay.stack.ref("DeliveryQueue"), MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])

        assert hanging.answered == 0, "the neighbour's POST has not returned"
        assert [json.loads(m["Body"])["payload"]["text"] for m in handed_out] == [second], (
            "the healthy conversation's next response is handed out: its first was released as soon as it was done"
        )
        assert deliveries.delivered("h") == [first]
    finally:
        hanging.release.set()
        batch.join(30)


BREAKER = {
    "CACHE_TTL_SECONDS": "0.5",
    "DELIVERY_STOP_HOLD_SECONDS": "1",
    "DELIVERY_RETRY_SCHEDULE": "1",
    "ENDPOINT_FAILURE_THRESHOLD": "2",
    "ENDPOINT_COOLDOWN_SECONDS": "1",
    "ENDPOINT_PARK_AFTER_SECONDS": "1",
}
"""Seconds for what takes minutes when deployed: the breaker opens after 2 failures, parks after 1 s open."""


def parked(relay: Relay) -> tuple[EndpointState, int]:
    relay.clients.forget("acme")
    record = relay.clients.get("acme")
    return record.endpoint_state, record.parked_conversations


def poll_until(relay: Relay, done: Callable[[], bool], timeout: float = 90) -> None:
    """Poll the delivery queue as Lambda does until `done()`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done within {timeout} s"
        if relay.mapping.poll() == 0:
            time.sleep(0.1)


def ids_of(receiver: Receiver, texts: list[str]) -> list[set[str]]:
    return [{attempt.webhook_id for attempt in receiver.tries(text)} for text in texts]


def test_a_dead_receivers_responses_are_parked_out_of_the_queue_and_delivered_in_order_with_their_ids_when_back(
    aws: boto3.Session, bot: HTTPServer, fast: HTTPServer
) -> None:
    bot.expect_request("/webhook", method="POST").respond_with_json({})
    relay = Relay(aws, bot, parameters={"DeliveryMaxAttempts": "20"})  # parked long before its attempts are used
    relay.delivery = LocalFunction(relay.delivery.spec, BREAKER)
    relay.mapping = EventSourceMapping(relay.sqs, relay.delivery)
    acme, acme_token = relay.add_client("acme", response_url=fast.url_for("/hook"))
    globex, globex_token = relay.add_client("globex", response_url=fast.url_for("/hook"))
    back = threading.Event()
    receiver = Receiver(fast, {"acme": acme.webhook_secret, "globex": globex.webhook_secret})
    for conversation in ("c", "d", ""):  # "": no conversation, as the endpoint's probe has
        receiver.fail(conversation, 0, until=back.is_set)  # acme's receiver is down
    said: dict[str, list[str]] = {"c": say(relay, acme_token, "c", "c", 3), "d": say(relay, acme_token, "d", "d", 2)}
    relay.record()

    queue = relay.stack.ref("DeliveryQueue")
    # acme's responses leave the queue: its probe is all that is left of it there.
    poll_until(relay, lambda: parked(relay) == (EndpointState.PARKED, 2) and relay.queue_depth(queue) == 1)

    assert receiver.delivered("c") == receiver.delivered("d") == []
    other = say(relay, globex_token, "g", "g")
    poll_until(relay, lambda: receiver.delivered("g") == other)  # another client is delivered to meanwhile

    back.set()
    said["c"] += say(relay, acme_token, "c", "c again")
    relay.record()
    poll_until(relay, lambda: receiver.delivered("c") == said["c"] and receiver.delivered("d") == said["d"])

    assert all(len(ids) == 1 for ids in ids_of(receiver, said["c"][:3] + said["d"])), "the same webhook-id"
    assert parked(relay) == (EndpointState.HEALTHY, 0)
    assert relay.dead_letters() == []


def test_set_url_switches_a_parked_endpoint_on_and_its_parked_conversations_are_delivered_in_order(
    aws: boto3.Session, bot: HTTPServer, fast: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    bot.expect_request("/webhook", method="POST").respond_with_json({})
    relay = Relay(aws, bot)
    acme, token = relay.add_client("acme", response_url="https://gone.example/hook")
    receiver = Receiver(fast, {"acme": acme.webhook_secret})
    said = say(relay, token, "c", "c", 2)
    relay.record()
    now = datetime.now(UTC)
    # What the delivery function wrote when it parked the endpoint and then the conversation's two responses.
    relay.clients.open_endpoint("acme", now, now, "receiver unreachable")
    relay.clients.park_endpoint("acme", EndpointState.PARKED, now, "failing for 15 minutes")
    state = DeliveryState(aws.client("dynamodb"), relay.stack.ref("DeliveryStateTable"))
    for queued in relay.sqs.receive_message(QueueUrl=relay.stack.ref("DeliveryQueue"), MaxNumberOfMessages=10)[
        "Messages"
    ]:
        response = ClientResponse.model_validate_json(queued["Body"])
        assert state.park("acme", "c", response.webhook_id, relay.clients.parked_counted("acme"))
        relay.sqs.delete_message(QueueUrl=relay.stack.ref("DeliveryQueue"), ReceiptHandle=queued["ReceiptHandle"])
    where = [
        "--table",
        relay.stack.ref("ClientsTable"),
        "--delivery-state-table",
        relay.stack.ref("DeliveryStateTable"),
    ]
    where += ["--queue", relay.stack.ref("DeliveryQueue")]

    assert cli.main(["set-url", "acme", fast.url_for("/hook"), *where]) == 0
    relay.drain()

    assert "Its 1 parked conversation(s) are delivered from the responses log" in capsys.readouterr().out
    assert receiver.delivered("c") == said
    assert parked(relay) == (EndpointState.HEALTHY, 0)
