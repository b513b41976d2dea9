"""What every function sets up besides its flow and its observability: its SnapStart restore hook, clients made
on first use, and the queue consumers' batch processor."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3

from relay.adapters import outbound

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor


class ClientOnFirstUse:
    """A boto3 client made when first called: one that only a rare path needs costs no cold start its time."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._client: Any = None
        self._lock = threading.Lock()  # first used from several threads at once (the delivery's conversations)

    def __getattr__(self, operation: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = boto3.client(self._service)
        return getattr(self._client, operation)


class Secrets:
    """Secrets Manager values through Powertools' provider, each cached five minutes in a warm container."""

    def __init__(self, client: Any) -> None:
        # Imported here: not every function reads a secret.
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        self._provider = SecretsProvider(boto3_client=client)

    def of(self, name: str) -> Callable[[], str]:
        """What reads the secret's current value."""
        return lambda: str(self._provider.get(name, max_age=300))


def renew_after_restore() -> None:
    """Every environment restored from one SnapStart snapshot starts from the same memory: renew what must differ.

    Nothing else needs it: no invocation runs before the snapshot, so no secret, client record, conversation
    or idempotency record is cached in it, and boto3's clients get their credentials from Lambda's
    container credentials under SnapStart, refreshed as they expire.
    """
    random.seed()  # botocore's retry jitter would otherwise draw the same numbers in every copy
    outbound.pool.clear()  # a connection opened before the snapshot is dead after it


try:
    from snapshot_restore_py import register_after_restore
except ImportError:  # outside Lambda's managed runtime (tests, make dev), which brings it: never restored
    pass
else:
    register_after_restore(renew_after_restore)


def conversation_ordered_processor() -> SqsFifoPartialProcessor:
    """Powertools' FIFO batch processor as the queue consumers use it: a failed message holds up only its own
    conversation (message group) while the others in the batch go on, and failures are reported per message,
    never as an invocation error."""
    # Imported here: the API functions import this module too, and have no batch to process.
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    processor.raise_on_entire_batch_failure = False
    return processor
