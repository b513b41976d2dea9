"""relay.edge.runtime: what a SnapStart restore renews, and clients made on first use."""

from __future__ import annotations

import random

import boto3
from pytest_httpserver import HTTPServer
from snapshot_restore_py import get_after_restore

from relay.adapters import outbound
from relay.edge.runtime import ClientOnFirstUse, renew_after_restore


def restore() -> None:
    """What Lambda's runtime does after restoring a snapshot: run the registered hooks in order."""
    for hook, args, kwargs in get_after_restore():
        hook(*args, **kwargs)


def test_after_a_restore_connections_made_before_the_snapshot_are_not_reused(receiver: HTTPServer) -> None:
    receiver.expect_request("/hook").respond_with_data("")
    outbound.post(receiver.url_for("/hook"), "{}", {}, 5)
    assert outbound.pool.pools  # a connection kept for the next request

    restore()

    assert not outbound.pool.pools
    assert outbound.post(receiver.url_for("/hook"), "{}", {}, 5) == 200


def test_every_restored_copy_draws_its_own_random_numbers() -> None:
    snapshot = random.getstate()
    copies = []
    for _ in range(2):
        random.setstate(snapshot)
        restore()
        copies.append(random.getstate())

    assert copies[0] != copies[1]


def test_the_hook_is_registered_once() -> None:
    assert [hook for hook, _, _ in get_after_restore()].count(renew_after_restore) == 1


def test_a_client_on_first_use_calls_aws_as_the_client_would(aws: boto3.Session) -> None:
    queue_url = aws.client("sqs").create_queue(QueueName="q")["QueueUrl"]

    sqs = ClientOnFirstUse("sqs")

    assert sqs.get_queue_url(QueueName="q")["QueueUrl"] == queue_url
