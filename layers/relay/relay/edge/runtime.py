"""What every function sets up besides its flow: its X-Ray tracer and its SnapStart restore hook.

The X-Ray SDK is loaded only when its subsegments are wanted.

Lambda records each invocation's segment by itself (`Tracing: Active`). The SDK adds subsegments for the
handler and each AWS call, at a price on every cold start (README, "Design notes"), so it is loaded only
where Powertools' Tracer would trace: in Lambda, with POWERTOOLS_TRACE_DISABLED false. Powertools' Tracer
imports the SDK even when tracing is off, hence this module.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

from relay.adapters import outbound

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor


def sdk_tracing() -> bool:
    """Powertools' own rule: traced in Lambda, not under SAM local or Chalice, unless POWERTOOLS_TRACE_DISABLED."""
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_emulator = os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV)
    return bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV)) and not in_emulator


class Untraced:
    """The Tracer's decorators when the SDK is off: each returns the function itself, so a call costs nothing."""

    def capture_lambda_handler[F: Callable[..., Any]](self, handler: F) -> F:
        return handler

    def capture_method[F: Callable[..., Any]](self, method: F) -> F:
        return method


def create_tracer() -> Tracer | Untraced:
    if not sdk_tracing():
        return Untraced()
    from aws_lambda_powertools import Tracer

    try:
        import aws_xray_sdk  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "POWERTOOLS_TRACE_DISABLED is false but the X-Ray SDK is in none of the function's layers: "
            "set the stack's XRaySdkLayerArn to the public Powertools layer (README, Design notes)"
        ) from None

    # botocore only, not urllib3: the URLs of the bot and of clients' webhooks can carry secrets.
    return Tracer(patch_modules=["botocore"])


tracer = create_tracer()


class ClientOnFirstUse:
    """A boto3 client made when first called: one that only a rare path needs costs no cold start its time."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._client: Any = None

    def __getattr__(self, operation: str) -> Any:
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
