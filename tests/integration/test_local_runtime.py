"""The local stack's plumbing on its own: its HTTP API in front of functions, and functions in containers."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import urllib3

from devstack.gateway import Gateway
from devstack.provision import FunctionSpec
from devstack.runtime import Container, Function, FunctionError
from harness import Relay


def spec(
    code_dir: Path, routes: list[tuple[str, str]] | None = None, timeout_seconds: int = 3, queue_url: str | None = None
) -> FunctionSpec:
    return FunctionSpec(
        name="ProbeFunction",
        code_dir=code_dir,
        handler="app.handler",
        timeout_seconds=timeout_seconds,
        environment={"POWERTOOLS_SERVICE_NAME": "probe"},
        http_routes=routes or [],
        queue_url=queue_url,
        batch_size=10,
    )


class Recorded:
    """A function that answers with what it is told to and keeps the events it got."""

    def __init__(self, result: Any, routes: list[tuple[str, str]]) -> None:
        self.spec = spec(Path("."), routes)
        self.result = result
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[Gateway] = []

    def start(function: Recorded) -> str:
        gateway = Gateway(0)
        gateway.route_to([function])
        threading.Thread(target=gateway.serve_forever, daemon=True).start()
        servers.append(gateway)
        return gateway.url

    yield start
    for gateway in servers:
        gateway.shutdown()
        gateway.server_close()


http = urllib3.PoolManager(retries=False)


def test_a_request_becomes_a_payload_2_0_event_and_the_result_its_response(serve: Any) -> None:
    function = Recorded(
        {"statusCode": 201, "headers": {"x-answer": "yes"}, "cookies": ["a=1", "b=2"], "body": "made"},
        [("POST", "/items/{item}")],
    )
    url = serve(function)

    response = http.request(
        "POST",
        f"{url}/items/42?tag=x&tag=y&empty=",
        body=b"\xff\x00",
        headers=urllib3.HTTPHeaderDict([("X-Many", "1"), ("X-Many", "2"), ("Cookie", "s=1; t=2"), ("User-Agent", "t")]),
    )

    assert (response.status, response.data, response.headers["x-answer"]) == (201, b"made", "yes")
    assert response.headers.getlist("set-cookie") == ["a=1", "b=2"]
    (event,) = function.events
    assert event["routeKey"] == "POST /items/{item}" and event["pathParameters"] == {"item": "42"}
    assert event["rawQueryString"] == "tag=x&tag=y&empty="
    assert event["queryStringParameters"] == {"tag": "x,y", "empty": ""}
    assert event["headers"]["x-many"] == "1,2" and "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["requestContext"]["http"]["userAgent"] == "t"
    assert event["isBase64Encoded"] is True and event["body"] == "/wA="


def test_a_result_without_status_code_is_a_json_body(serve: Any) -> None:
    url = serve(Recorded({"ok": True}, [("GET", "/status")]))

    response = http.request("GET", f"{url}/status")

    assert (response.status, response.json(), response.headers["content-type"]) == (
        200,
        {"ok": True},
        "application/json",
    )


def test_a_head_is_answered_as_its_get_without_the_body(serve: Any) -> None:
    function = Recorded({"statusCode": 200, "headers": {"content-type": "text/javascript"}, "body": "export {}"}, [])
    function.spec = spec(Path("."), [("GET", "/relay-chat.js")])
    url = serve(function)

    head = http.request("HEAD", f"{url}/relay-chat.js")
    get = http.request("GET", f"{url}/relay-chat.js")

    assert (head.status, head.data, head.headers["content-type"]) == (200, b"", "text/javascript")
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.data))
    assert [event["requestContext"]["http"]["method"] for event in function.events] == ["GET", "GET"]


@pytest.mark.parametrize("result", [FunctionError("ProbeFunction: boom"), {"statusCode": "teapot"}])
def test_a_function_error_or_a_malformed_result_is_a_500(serve: Any, result: Any) -> None:
    url = serve(Recorded(result, [("POST", "/work")]))

    response = http.request("POST", f"{url}/work", body=b"{}")

    assert (response.status, response.json()) == (500, {"message": "Internal Server Error"})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/elsewhere"),
        ("GET", "/work"),
        ("POST", "/work/extra"),
        ("TRACE", "/work"),
        ("QUERY", "/work"),
    ],
)
def test_no_route_is_a_404(serve: Any, method: str, path: str) -> None:
    function = Recorded({"statusCode": 200}, [("POST", "/work")])
    url = serve(function)

    response = http.request(method, f"{url}{path}", body=b"{}")

    assert (response.status, response.json()) == (404, {"message": "Not Found"})
    assert function.events == []


def test_a_chunked_body_is_refused_with_411_rather_than_read_as_empty(serve: Any) -> None:
    function = Recorded({"statusCode": 200}, [("POST", "/work")])
    url = serve(function)
    host, port = url.removeprefix("http://").split(":")

    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(b"POST /work HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        answer = connection.recv(4096)

    assert answer.startswith(b"HTTP/1.1 411")
    assert function.events == []


# ── containers ──


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(
        "import os, time\n"
        "def handler(event, context):\n"
        "    if event.get('raise'):\n"
        "        raise ValueError('asked to fail')\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'pid': os.getpid(), 'service': os.environ['POWERTOOLS_SERVICE_NAME']}\n"
    )
    return tmp_path


def test_a_container_keeps_serving_after_its_handler_raises(handler_dir: Path) -> None:
    function = Function(spec(handler_dir), concurrency=1)
    try:
        first = function.invoke({})
        with pytest.raises(FunctionError, match="ValueError: asked to fail"):
            function.invoke({"raise": True})
        after = function.invoke({})
    finally:
        function.stop()

    assert first == after == {"pid": first["pid"], "service": "probe"}
    assert first["pid"] != os.getpid()


def wait_until_dead(pid: int) -> None:
    """Until the kill has landed: the process is gone or a zombie (Linux's /proc)."""
    for _ in range(200):
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] in {"Z", "X"}:
                return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still running")


def test_a_container_that_died_or_timed_out_is_replaced_by_a_fresh_one(handler_dir: Path) -> None:
    function = Function(spec(handler_dir, timeout_seconds=1), concurrency=1)
    try:
        first = function.invoke({})["pid"]
        os.kill(first, signal.SIGKILL)
        wait_until_dead(first)
        second = function.invoke({})["pid"]
        with pytest.raises(FunctionError, match="timed out"):
            function.invoke({"sleep": 5})
        third = function.invoke({})["pid"]
    finally:
        function.stop()

    assert len({first, second, third}) == 3


def test_an_idle_container_that_died_unnoticed_is_replaced_and_the_invocation_is_not_lost(
    handler_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = Function(spec(handler_dir), concurrency=1)
    try:
        first = function.invoke({})["pid"]
        os.kill(first, signal.SIGKILL)
        wait_until_dead(first)
        # Alive, as multiprocessing reports it until the fork server has reaped it and said so (on a busy machine, a
        # while), or until the stack stops it.
        stopped: set[int | None] = set()
        stop = Container.stop
        monkeypatch.setattr(Container, "stop", lambda container: (stopped.add(container._process.pid), stop(container)))
        monkeypatch.setattr(Container, "alive", property(lambda container: container._process.pid not in stopped))
        second = function.invoke({})["pid"]
    finally:
        function.stop()

    assert second != first


def test_busy_containers_make_a_function_start_another_up_to_its_concurrency(handler_dir: Path) -> None:
    function = Function(spec(handler_dir), concurrency=2)
    results: list[int] = []
    try:
        threads = [
            threading.Thread(target=lambda: results.append(function.invoke({"sleep": 1})["pid"])) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        function.stop()

    assert len(results) == 3
    assert len(set(results)) == 2, json.dumps(results)


def test_a_container_that_comes_free_goes_to_a_client_waiting_behind_another_clients_burst(handler_dir: Path) -> None:
    function = Function(spec(handler_dir), concurrency=1)
    finished: list[str] = []

    def call(client: str, seconds: float) -> None:
        function.invoke({"headers": {"authorization": f"Bearer {client}.secret"}, "sleep": seconds})
        finished.append(client)

    # The flooding client holds the one container; three more of its requests, then one of another client's, wait.
    arrivals = [("flood", 1.0), ("flood", 0.1), ("flood", 0.1), ("flood", 0.1), ("other", 0.0)]
    threads = [threading.Thread(target=call, args=arrival) for arrival in arrivals]
    try:
        for thread in threads:
            thread.start()
            time.sleep(0.1)  # in this order, well within the first request's 1 s
        for thread in threads:
            thread.join(30)
    finally:
        function.stop()

    assert finished == ["flood", "other", "flood", "flood", "flood"]


def test_a_handler_imported_while_another_functions_invocation_ends_keeps_its_environment(tmp_path: Path) -> None:
    from devstack.lambdas import LocalFunction

    for name, code in {
        "busy": "import time\ndef handler(event, context):\n    time.sleep(0.2)\n",
        # Reads its setting at import, as the relay's handlers do, after the other's invocation has ended.
        "late": "import os, time\ntime.sleep(0.6)\nSETTING = os.environ.get('PROBE_SETTING')\n"
        "def handler(event, context):\n    return SETTING\n",
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(code)
    busy = LocalFunction(replace(spec(tmp_path / "busy"), name="Busy"))
    invoking = threading.Thread(target=busy.invoke, args=({},))
    invoking.start()
    time.sleep(0.05)  # well within the busy invocation's 0.2 s
    late = LocalFunction(replace(spec(tmp_path / "late"), name="Late", environment={"PROBE_SETTING": "its own"}))
    invoking.join()

    assert late.invoke({}) == "its own"


def test_the_dead_letter_queue_watched_is_the_one_the_delivery_queue_redrives_to(relay: Relay) -> None:
    from devstack.local import _dead_letter_queue

    dead_letters = _dead_letter_queue(relay.sqs, relay.stack.ref("DeliveryQueue"))

    assert dead_letters == relay.stack.ref("DeliveryDeadLetterQueue")
    assert _dead_letter_queue(relay.sqs, dead_letters) is None


def test_a_containers_answer_names_the_queues_and_topics_its_invocation_sent_to_even_when_it_raised(
    tmp_path: Path,
) -> None:
    """What the stack wakes pollers by: a send through a client made at import or on first use, to a queue or a
    topic, is named once the invocation answers; an invocation that sent nothing names nothing. No AWS needed:
    the send is named as it is made, and here it finds nothing listening."""
    (tmp_path / "app.py").write_text(
        "import boto3\n"
        "from botocore.config import Config\n"
        "config = Config(retries={'total_max_attempts': 1}, connect_timeout=1)\n"
        "sqs = boto3.client('sqs', config=config)\n"
        "def handler(event, context):\n"
        "    for target in event['send']:\n"
        "        try:\n"
        "            if target.startswith('arn:'):\n"
        "                boto3.client('sns', config=config).publish(TopicArn=target, Message='m')\n"
        "            else:\n"
        "                sqs.send_message(QueueUrl=target, MessageBody='m')\n"
        "        except Exception:\n"
        "            pass\n"
        "    if event.get('raise'):\n"
        "        raise ValueError('asked to fail')\n"
        "    return 'done'\n"
    )
    queue, topic = "http://127.0.0.1:9/000000000000/q.fifo", "arn:aws:sns:us-east-1:000000000000:t.fifo"
    sent: list[list[str]] = []
    aws = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    function = Function(spec(tmp_path), concurrency=1, environment=aws, sent=lambda targets: sent.append([*targets]))
    try:
        assert function.invoke({"send": [queue, topic, queue]}) == "done"
        assert function.invoke({"send": []}) == "done"
        with pytest.raises(FunctionError, match="asked to fail"):
            function.invoke({"send": [topic], "raise": True})
    finally:
        function.stop()

    assert sent == [sorted([queue, topic]), [topic]]


@dataclass
class Mapping:
    """An event source mapping as the waker sees it: its queue, and how often it was woken."""

    queue_url: str
    queue_arn: str
    wakes: int = 0

    def wake(self) -> None:
        self.wakes += 1


def test_a_send_wakes_the_pollers_of_the_queue_sent_to_and_a_publish_those_of_the_queues_subscribed_to_it(
    relay: Relay,
) -> None:
    """A bot response's publish is what its delivery and its record wait on, a nudge what the stream waits on;
    a queue nothing was sent to is not woken (a receive that would come back empty)."""
    import boto3

    from devstack.local import _subscribed_queues, waker

    mappings = [
        Mapping(attributes["QueueUrl"], attributes["Arn"])
        for attributes in relay.stack.resolver.attributes.values()
        if "QueueUrl" in attributes
    ]
    names = {
        attributes["QueueUrl"]: queue
        for queue, attributes in relay.stack.resolver.attributes.items()
        if "QueueUrl" in attributes
    }
    wake = waker(mappings, _subscribed_queues(boto3.client("sns")))

    def woken(*sent: str) -> list[str]:
        for mapping in mappings:
            mapping.wakes = 0
        wake(sent)
        return sorted(names[mapping.queue_url] for mapping in mappings for _ in range(mapping.wakes))

    assert woken(relay.stack.ref("ResponsesTopic")) == ["DeliveryQueue", "ResponsesLogQueue"]
    assert woken(relay.stack.ref("StreamQueue")) == ["StreamQueue"]
    assert woken(relay.stack.ref("OperationsTopic")) == []
    assert woken() == []


# ── the event source mapping ──


class Conversations:
    """A delivery function on a FIFO queue, scripted to replay one interleaving of the mapping's two pollers.

    The first response of conversation `g` is held until conversation `x`'s response has failed (its retry
    made due half a second after that invocation ends); `g`'s first is then done and deleted while the other
    poller is receiving, and `x`'s comes back while the rest of `g` waits.
    """

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.spec = spec(Path("."), queue_url=queue_url)
        self.sqs = sqs
        self.handed_over: list[str] = []
        self.first_taken = threading.Event()
        self.x_failed = threading.Event()
        self.done = threading.Event()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        bodies = [record["body"] for record in event["Records"]]
        self.handed_over.extend(bodies)
        if bodies == ["g1"]:
            self.first_taken.set()
            self.x_failed.wait(10)
            time.sleep(0.2)  # the other poller is receiving by now
            return {"batchItemFailures": []}
        if bodies == ["x1"] and not self.x_failed.is_set():
            (record,) = event["Records"]
            self.sqs.change_message_visibility(
                QueueUrl=self.spec.queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=1
            )
            time.sleep(0.5)
            self.x_failed.set()
            return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        if {"g1", "g2", "g3", "x1"} <= set(self.handed_over):
            self.done.set()
        return {"batchItemFailures": []}


def test_the_mapping_never_hands_over_a_later_response_while_an_earlier_one_waits(aws: Any) -> None:
    from devstack.esm import EventSourceMapping

    sqs = aws.client("sqs")
    url = sqs.create_queue(
        QueueName="delivery.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    function = Conversations(aws.client("sqs"), url)
    mapping = EventSourceMapping(sqs, function)
    stop = threading.Event()
    pollers = [threading.Thread(target=mapping.run, args=(stop,), daemon=True) for _ in range(2)]
    sqs.send_message(QueueUrl=url, MessageBody="g1", MessageGroupId="g")
    for poller in pollers:
        poller.start()
    try:
        assert function.first_taken.wait(10)
        for body in ("g2", "x1", "g3"):
            sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=body[0])
        assert function.done.wait(20), function.handed_over
    finally:
        stop.set()
        for poller in pollers:
            poller.join(10)

    conversation_g = [body for body in function.handed_over if body.startswith("g")]
    assert conversation_g == ["g1", "g2", "g3"], function.handed_over
