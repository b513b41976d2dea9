"""How long a failed delivery waits: the schedule a deployer configures, and what the receiver asks for."""

from __future__ import annotations

import email.utils

import pytest
from pydantic import ValidationError

from relay.adapters.webhook import retry_after
from relay.settings import MAX_RETRY_DELAY_SECONDS, DeliverySettings, retry_delay

SVIX = (5, 300, 1800, 7200, 18000, 36000)
NAMES = {
    "CLIENTS_TABLE": "t",
    "DELIVERY_STATE_TABLE": "s",
    "ATTEMPTS_TABLE": "a",
    "DELIVERY_QUEUE_URL": "q",
    "DEAD_LETTER_QUEUE_URL": "d",
    "RESPONSES_TABLE": "r",
    "OPERATIONS_TOPIC_ARN": "o",
}


def settings_from(monkeypatch: pytest.MonkeyPatch, schedule: str) -> DeliverySettings:
    """The delivery function's settings from its environment, with `schedule` as DELIVERY_RETRY_SCHEDULE."""
    for name, value in {**NAMES, "DELIVERY_RETRY_SCHEDULE": schedule}.items():
        monkeypatch.setenv(name, value)
    return DeliverySettings.from_environment()


def test_each_failure_waits_longer() -> None:
    assert [retry_delay(attempt, SVIX) for attempt in range(1, 7)] == list(SVIX)


def test_a_schedule_shorter_than_the_attempts_repeats_its_last_delay() -> None:
    assert [retry_delay(attempt, (1, 2)) for attempt in range(1, 5)] == [1, 2, 2, 2]


def test_schedule_is_read_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from(monkeypatch, "5,300,1800").delivery_retry_schedule == (5, 300, 1800)


@pytest.mark.parametrize("schedule", ["", "5,x", "5,50000", "-1"])
def test_a_bad_schedule_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, schedule: str) -> None:
    with pytest.raises(ValidationError, match="delivery_retry_schedule"):
        settings_from(monkeypatch, schedule)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120),
        (" 0 ", 0),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90),
        (email.utils.formatdate(NOW - 90, usegmt=True), 0),
        ("999999", MAX_RETRY_DELAY_SECONDS),
        (email.utils.formatdate(NOW + 3 * 86400, usegmt=True), MAX_RETRY_DELAY_SECONDS),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date_within_sqs_limit(header: str | None, seconds: int) -> None:
    assert retry_after(header, now=NOW) == seconds
