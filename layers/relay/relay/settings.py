"""Each function's environment, validated once per container so a misconfiguration fails loudly at init."""

from __future__ import annotations

import math
import os
import re
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PositiveFloat,
    PositiveInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from relay.rate_limits import DEFAULT_RATE, Rate

ORIGIN_PATTERN = r"https?://[^/,\s]+"
"""A browser origin as a page's Origin header carries it: scheme and host (and port), no path."""

STOP_HOLD_MARGIN_SECONDS = 5
"""The default stop hold's time beyond the client cache time: for a record read just before the stop was written."""

MAX_RETRY_DELAY_SECONDS = 43000
"""The longest retry delay: SQS keeps a message invisible at most 12 hours after it was received; leave the run."""


def retry_delay(attempt: int, schedule: tuple[int, ...]) -> int:
    """Seconds until the next attempt after the response's `attempt`-th real attempt failed."""
    return schedule[min(attempt, len(schedule)) - 1]


class _Settings(BaseModel):
    """Plain pydantic: pydantic-settings would add its loaders for files, secrets and clouds (about 35 ms and
    2 MiB) to every cold start."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_environment(cls) -> Self:
        """Each field from the environment variable of its name in capitals."""
        variables = {name: os.environ[name.upper()] for name in cls.model_fields if name.upper() in os.environ}
        return cls.model_validate(variables)

    cache_ttl_seconds: PositiveFloat = 60.0
    """How long a warm container trusts a cached client or conversation record."""
    max_body_bytes: PositiveInt = 256 * 1024
    """The largest request body taken; SNS carries no more than 256 KiB."""


class InboundSettings(_Settings):
    clients_table: str
    conversations_table: str
    idempotency_table: str
    bot_webhook_url: HttpUrl
    bot_token_secret: str
    bot_timeout_seconds: PositiveFloat = 10.0
    idempotency_ttl_seconds: PositiveInt = 24 * 3600
    conversation_ttl_days: PositiveInt = 90
    responses_table: str
    attempts_table: str
    delivery_state_table: str
    delivery_queue_url: str
    webhook_timeout_seconds: PositiveFloat = 10.0
    """How long POST /client/test waits for the response URL, as a delivery does."""
    operations_topic_arn: str
    watermark_key_secret: str
    conversation_token_key_secret: str
    stream_url: Annotated[str, StringConstraints(pattern=r"^wss?://[^?#\s]+$")]
    """The WebSocket stream's URL (no query); a token answer's `streamUrl` is it with `?token=…`."""
    browser_origins: tuple[str, ...] = ()
    """The origins whose pages may call the routes a conversation token may use (CORS); none by default."""
    rate_limits_table: str
    client_rate_limit: Rate = DEFAULT_RATE
    """Requests per second of a client without a rate of its own (relay.rate_limits)."""

    @field_validator("browser_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(value.split(",")) if value else ()
        return value

    @field_validator("browser_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if wrong := [origin for origin in value if not re.fullmatch(ORIGIN_PATTERN, origin)]:
            raise ValueError(f"not origins (scheme://host[:port], no path): {', '.join(wrong)}")
        return value


class BotResponseSettings(_Settings):
    conversations_table: str
    responses_topic_arn: str
    bot_response_secret: str


class ResponsesLogSettings(_Settings):
    responses_table: str
    response_retention_days: PositiveInt = 30
    connections_table: str
    stream_queue_url: str


class StreamSocketSettings(_Settings):
    """The WebSocket API's $connect, $disconnect and $default."""

    clients_table: str
    connections_table: str
    responses_table: str
    stream_queue_url: str
    watermark_key_secret: str
    conversation_token_key_secret: str


class StreamSettings(_Settings):
    """The stream function: nudges from the stream queue → frames to the conversation's connections."""

    connections_table: str
    responses_table: str
    stream_queue_url: str
    stream_connections_url: HttpUrl
    """The WebSocket API's @connections endpoint: https://{api}.execute-api.{region}.amazonaws.com/{stage}."""
    watermark_key_secret: str


class DeliverySettings(_Settings):
    clients_table: str
    delivery_state_table: str
    attempts_table: str
    attempt_retention_days: PositiveInt = 30
    operations_topic_arn: str
    """How long the attempt log keeps each attempt's record."""
    delivery_queue_url: str
    dead_letter_queue_url: str
    webhook_timeout_seconds: PositiveFloat = 10.0
    delivery_max_attempts: PositiveInt = 7
    delivery_retry_schedule: tuple[int, ...] = Field(default=(5, 300, 1800, 7200, 18000, 36000))
    """Seconds to wait before each retry: the n-th failure waits the n-th entry (the last one repeats)."""
    delivery_stop_hold_seconds: int = Field(
        default_factory=lambda fields: math.ceil(fields["cache_ttl_seconds"]) + STOP_HOLD_MARGIN_SECONDS,
        gt=0,
        le=MAX_RETRY_DELAY_SECONDS,
    )
    """How long the response a conversation stopped at is held before it and the rest of the conversation go to
    the dead-letter queue: at least the client cache time, so that every container's cached client record shows
    the stop first and none delivers past it. By default the cache time and STOP_HOLD_MARGIN_SECONDS."""
    endpoint_failure_threshold: PositiveInt = 3
    """Failures in a row (error answers, refusals, timeouts, slow successes) that open an endpoint's breaker."""
    endpoint_cooldown_seconds: int = Field(default=30, gt=0, le=MAX_RETRY_DELAY_SECONDS)
    """How long an open breaker holds the endpoint's responses before one probe goes."""
    endpoint_slow_seconds: PositiveFloat = Field(default_factory=lambda fields: fields["webhook_timeout_seconds"] / 2)
    """A success that took this long counts against the breaker: a receiver that slow holds a delivery execution
    (shared by every client) for most of the timeout. By default half the webhook timeout."""
    endpoint_concurrency: PositiveInt = 4
    """The most POSTs one container has in flight to one endpoint at once."""
    endpoint_park_after_seconds: PositiveInt = 300
    """How long an endpoint's breaker stays open before its responses are parked: they leave the shared delivery
    queue (in the responses log they wait anyway), so a dead receiver's backlog cannot grow there."""
    endpoint_disable_after_hours: PositiveFloat = 120
    """How long an endpoint fails before it is disabled (no more probes) until it is switched on again."""
    responses_table: str
    """The responses log: parked conversations are delivered from it when their endpoint is back."""

    @property
    def retry_window_seconds(self) -> int:
        """The time the retry schedule spends on a response's attempts: a response whose endpoint has been failing
        longer stops its conversation, even if the open breaker left it fewer attempts."""
        schedule = self.delivery_retry_schedule
        return sum(retry_delay(attempt, schedule) for attempt in range(1, self.delivery_max_attempts))

    @field_validator("delivery_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("delivery_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 0 <= delay <= MAX_RETRY_DELAY_SECONDS for delay in value):
            raise ValueError(
                f"needs one or more delays between 0 and {MAX_RETRY_DELAY_SECONDS} seconds"
                " (SQS's 12-hour visibility limit)"
            )
        return value

    @model_validator(mode="after")
    def _check_stop_hold(self) -> Self:
        if self.delivery_stop_hold_seconds < self.cache_ttl_seconds:
            raise ValueError(
                f"delivery_stop_hold_seconds ({self.delivery_stop_hold_seconds}) must be at least cache_ttl_seconds"
                f" ({self.cache_ttl_seconds}): a container's cached client record must show a stop before its"
                " conversation moves to the dead-letter queue"
            )
        return self
