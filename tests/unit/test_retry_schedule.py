"""How long a failed delivery waits, and the schedule a deployer configures."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from relay.delivery import retry_delay
from relay.settings import DeliverySettings

SVIX = (5, 300, 1800, 7200, 18000, 36000)


def test_each_failure_waits_longer_and_the_last_goes_to_the_dead_letter_queue() -> None:
    delays = [retry_delay(attempt, SVIX, 7) for attempt in range(1, 8)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 0]


def test_a_schedule_shorter_than_the_attempts_repeats_its_last_delay() -> None:
    assert [retry_delay(attempt, (1, 2), 5) for attempt in range(1, 6)] == [1, 2, 2, 2, 0]


def test_schedule_is_read_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_RETRY_SCHEDULE", "5,300,1800")
    assert DeliverySettings(clients_table="t", delivery_queue_url="q").delivery_retry_schedule == (5, 300, 1800)


@pytest.mark.parametrize("schedule", ["", "5,x", "5,50000", "-1"])
def test_a_bad_schedule_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, schedule: str) -> None:
    monkeypatch.setenv("DELIVERY_RETRY_SCHEDULE", schedule)
    with pytest.raises(ValidationError, match="delivery_retry_schedule"):
        DeliverySettings(clients_table="t", delivery_queue_url="q")
