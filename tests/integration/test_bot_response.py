"""POST /bot/responses/{secret} as the bot and the topic's consumers see it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from harness import Relay, message


def delivery_depth(relay: Relay) -> int:
    return relay.queue_depth(relay.stack.ref("DeliveryQueue"))


def conversation_with_bot(relay: Relay, client_id: str = "acme", **fields: Any) -> dict[str, Any]:
    """A client sends a message; returns what the bot received (its conversationId is the one to answer)."""
    _, token = relay.add_client(client_id)
    response = relay.post_message(token, message(**fields))
    assert response.status == 200, response
    return relay.forwarded()[-1]


def bot_message(conversation_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "text",
        "payload": {"text": "hi there"},
        "conversationId": conversation_id,
        "botpressUserId": "bp-user-1",
        "botpressMessageId": str(uuid.uuid4()),
        "botpressConversationId": "bp-conv-1",
        **fields,
    }


def emitted_metrics(stdout: str) -> list[dict[str, Any]]:
    """The Embedded Metric Format documents Powertools printed."""
    documents = []
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents


def metric_names(stdout: str) -> set[str]:
    return {
        metric["Name"]
        for document in emitted_metrics(stdout)
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        received.extend(batch)
    return received


def attributes_of(sqs_message: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in sqs_message.get("MessageAttributes", {}).items()}


# ── the secret ───────────────────────────────────────────────────────────────────────────


WRONG_SECRETS = {
    "other": lambda secret: "wrong",
    "truncated": lambda secret: secret[:-1],
    "extended": lambda secret: secret + "x",
    "other-case": lambda secret: secret.swapcase(),
}


def test_a_wrong_secret_is_refused_and_nothing_is_published(relay: Relay) -> None:
    forwarded = conversation_with_bot(relay)

    for name, wrong in WRONG_SECRETS.items():  # each in turn, in one relay
        response = relay.post_bot_response(bot_message(forwarded["conversationId"]), secret=wrong(relay.bot_secret))

        assert response.status in (401, 403, 404), (name, response)
        assert response.json()["message"], name
        assert delivery_depth(relay) == 0, name


def test_the_right_secret_publishes(relay: Relay) -> None:
    """The refusals above are about the secret: the same response with the right one is published."""
    forwarded = conversation_with_bot(relay)

    response = relay.post_bot_response(bot_message(forwarded["conversationId"]))

    assert response.status == 200, response
    assert response.json() == {"status": "published"}
    assert delivery_depth(relay) == 1


def test_a_wrong_secret_is_refused_before_the_body_is_read(relay: Relay) -> None:
    """Someone guessing the URL learns nothing about the body format."""
    response = relay.post_bot_response(b"{not json", secret="wrong")

    assert response.status in (401, 403, 404), response
    assert delivery_depth(relay) == 0


# ── the install probe ────────────────────────────────────────────────────────────────────


def test_the_install_probe_answers_200_and_publishes_nothing(relay: Relay) -> None:
    conversation_with_bot(relay)

    response = relay.post_bot_response({"type": "test", "payload": "test"})

    assert response.status == 200, response
    assert delivery_depth(relay) == 0


def test_the_install_probe_with_a_wrong_secret_is_refused(relay: Relay) -> None:
    """So installing the bot with a mistyped response URL fails instead of silently losing every response."""
    response = relay.post_bot_response({"type": "test", "payload": "test"}, secret="wrong")

    assert not 200 <= response.status < 300, response
    assert response.status in (401, 403, 404), response


# ── routing ──────────────────────────────────────────────────────────────────────────────


def test_an_unknown_conversation_is_refused_counted_and_not_published(
    relay: Relay, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation_with_bot(relay, conversation="known")
    capsys.readouterr()

    response = relay.post_bot_response(bot_message("acme:never-seen"))

    assert 400 <= response.status < 500, response
    assert "acme:never-seen" in response.json()["message"]
    assert delivery_depth(relay) == 0
    assert "Unroutable" in metric_names(capsys.readouterr().out)


def test_a_routable_response_is_not_counted_unroutable(relay: Relay, capsys: pytest.CaptureFixture[str]) -> None:
    """The metric above is specific: a response that is published does not emit it."""
    forwarded = conversation_with_bot(relay)
    capsys.readouterr()

    assert relay.post_bot_response(bot_message(forwarded["conversationId"])).status == 200

    names = metric_names(capsys.readouterr().out)
    assert "Published" in names
    assert "Unroutable" not in names


def test_a_client_conversation_id_without_its_scope_is_unknown(relay: Relay) -> None:
    """The bot must answer with the id it was sent; the client's own id routes nowhere."""
    conversation_with_bot(relay, conversation="order-42")

    response = relay.post_bot_response(bot_message("order-42"))

    assert 400 <= response.status < 500, response
    assert delivery_depth(relay) == 0


# ── size ─────────────────────────────────────────────────────────────────────────────────


def test_a_bot_response_within_the_body_limit_is_published_or_refused_never_a_5xx(relay: Relay) -> None:
    """A compact bot body of exactly 256 KiB is accepted by size; once the relay adds the client's ids
    it no longer fits in an SNS message. The bot must get a 413 (or the response published), not a 500."""
    forwarded = conversation_with_bot(relay, conversation="order-42", userId="alice")
    body = bot_message(forwarded["conversationId"], payload={"text": ""})
    body["payload"]["text"] = "x" * (256 * 1024 - len(json.dumps(body, separators=(",", ":")).encode()))
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) == 256 * 1024

    try:
        response = relay.post_bot_response(raw)
    except Exception as error:
        pytest.fail(f"the function raised {type(error).__name__}: API Gateway answers the bot 500 ({error})")

    assert response.status in (200, 413), response
    assert delivery_depth(relay) == (1 if response.status == 200 else 0)


def test_a_bot_response_over_the_body_limit_is_refused_with_413(relay: Relay) -> None:
    forwarded = conversation_with_bot(relay)

    response = relay.post_bot_response(bot_message(forwarded["conversationId"], payload={"text": "x" * 300_000}))

    assert response.status == 413, response
    assert delivery_depth(relay) == 0


# ── invalid bodies ───────────────────────────────────────────────────────────────────────


INVALID_BODIES = {
    "missing-botpressMessageId": ({"botpressMessageId": None}, "botpressMessageId"),
    "empty-botpressMessageId": ({"botpressMessageId": ""}, "botpressMessageId"),
    "missing-conversationId": ({"conversationId": None}, "conversationId"),
    "missing-type": ({"type": None}, "type"),
    "missing-payload": ({"payload": None}, "payload"),
    "payload-string": ({"payload": "hello"}, "payload"),
    "payload-array": ({"payload": ["hello"]}, "payload"),
}


def test_an_invalid_bot_body_is_refused_naming_the_field(relay: Relay) -> None:
    forwarded = conversation_with_bot(relay)

    for name, (change, field) in INVALID_BODIES.items():  # each in turn, in one relay
        body = bot_message(forwarded["conversationId"])
        for key, value in change.items():
            if value is None:
                del body[key]
            else:
                body[key] = value

        response = relay.post_bot_response(body)

        assert response.status == 422, (name, response)
        assert field in [problem["field"] for problem in response.json()["errors"]], name
        assert field in response.json()["message"], name
        assert delivery_depth(relay) == 0, name


def test_a_bot_body_that_is_not_json_is_refused_with_400(relay: Relay) -> None:
    conversation_with_bot(relay)

    for raw in (b'{"type": "text", ', b"", b"[1, 2"):  # truncated, empty, an array cut short
        response = relay.post_bot_response(raw)

        assert response.status == 400, (raw, response)
        assert response.json()["message"], raw
        assert delivery_depth(relay) == 0, raw


def test_a_hostile_bot_payload_is_refused_with_400_not_dropped_with_a_5xx(relay: Relay) -> None:
    forwarded = conversation_with_bot(relay)
    hostile = {"nested-300-deep": json.loads('{"a":' * 300 + "1" + "}" * 300), "lone-surrogate": {"text": "\ud800"}}

    for name, payload in hostile.items():
        body = json.dumps(bot_message(forwarded["conversationId"], payload=payload)).encode()
        response = relay.post_bot_response(body)

        assert response.status == 400, (name, response)
        assert response.json()["message"], name
        assert delivery_depth(relay) == 0, name


# ── what consumers of the topic get ──────────────────────────────────────────────────────


def test_the_delivery_queue_gets_the_response_with_routing_attributes(relay: Relay) -> None:
    forwarded = conversation_with_bot(relay, conversation="order-42", userId="alice")
    sent = bot_message(forwarded["conversationId"], type="image", payload={"imageUrl": "https://x.test/a.png"})

    assert relay.post_bot_response(sent).status == 200

    (queued,) = receive_all(relay.sqs, relay.stack.ref("DeliveryQueue"))
    assert attributes_of(queued) == {
        "clientId": "acme",
        "conversationId": "order-42",
        "userId": "alice",
        "type": "image",
    }
    assert json.loads(queued["Body"]) == {
        "type": "image",
        "payload": {"imageUrl": "https://x.test/a.png"},
        "conversationId": "order-42",
        "clientId": "acme",
        "userId": "alice",
        "botpressMessageId": sent["botpressMessageId"],
        "botpressUserId": "bp-user-1",
        "botpressConversationId": "bp-conv-1",
    }


def test_a_subscriber_with_a_filter_policy_gets_only_its_clients_responses_in_order(
    relay: Relay, aws: boto3.Session
) -> None:
    sqs, sns = aws.client("sqs"), aws.client("sns")
    url = sqs.create_queue(QueueName="acme-consumer.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=relay.stack.ref("ResponsesTopic"),
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps({"clientId": ["acme"]})},
    )
    to_acme = conversation_with_bot(relay, "acme", conversation="support", userId="alice", text="from acme")
    to_globex = conversation_with_bot(relay, "globex", conversation="support", userId="bob", text="from globex")

    acme_replies = relay.reply(to_acme, 3)
    relay.reply(to_globex, 2)

    received = receive_all(sqs, url)
    assert [json.loads(m["Body"])["botpressMessageId"] for m in received] == [
        reply["botpressMessageId"] for reply in acme_replies
    ]
    assert {(json.loads(m["Body"])["clientId"], json.loads(m["Body"])["userId"]) for m in received} == {
        ("acme", "alice")
    }
    assert {attributes_of(m)["clientId"] for m in received} == {"acme"}
    assert delivery_depth(relay) == 5  # the unfiltered delivery queue still gets both clients' responses
