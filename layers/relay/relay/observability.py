"""The one logger, metrics and tracer of a function: every module of the layer and each handler import them from
here, so they share the service, the keys appended during an invocation and the metrics flushed at its end.

The X-Ray SDK is loaded only when its subsegments are wanted. Lambda records each invocation's segment by itself
(`Tracing: Active`). The SDK adds subsegments for the handler and each AWS call, at a price on every cold start
(docs/design.md, "X-Ray"), so it is loaded only where Powertools' Tracer would trace: in Lambda, with
POWERTOOLS_TRACE_DISABLED false. Powertools' Tracer imports the SDK even when tracing is off, hence `Untraced`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger()
metrics = Metrics()


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
            "set the stack's XRaySdkLayerArn to the public Powertools layer (docs/design.md, X-Ray)"
        ) from None

    # botocore only, not urllib3: the URLs of the bot and of clients' webhooks can carry secrets.
    return Tracer(patch_modules=["botocore"])


tracer = create_tracer()
