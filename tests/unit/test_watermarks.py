"""Watermarks: opaque to clients, bound to one client's conversation, impossible to forge."""

from __future__ import annotations

import base64

import pytest

from relay.watermarks import InvalidWatermark, Watermarks

KEY = "k" * 64
POSITION = 18890000000000000123


@pytest.fixture
def watermarks() -> Watermarks:
    return Watermarks(lambda: KEY)


def test_a_watermark_reads_back_as_its_position_in_its_conversation(watermarks: Watermarks) -> None:
    watermark = watermarks.issue("acme", "order-42", POSITION)

    assert watermarks.read(watermark, "acme", "order-42") == POSITION
    assert str(POSITION) not in watermark and "order-42" not in watermark


def test_the_same_position_gives_the_same_watermark(watermarks: Watermarks) -> None:
    assert watermarks.issue("acme", "c", 7) == watermarks.issue("acme", "c", 7) != watermarks.issue("acme", "c", 8)


@pytest.mark.parametrize(
    ("client", "conversation"),
    [("globex", "order-42"), ("acme", "order-43"), ("acme:order", "-42"), ("acmeo", "rder-42")],
)
def test_a_watermark_is_refused_in_another_conversation(watermarks: Watermarks, client: str, conversation: str) -> None:
    watermark = watermarks.issue("acme", "order-42", POSITION)

    with pytest.raises(InvalidWatermark, match="this conversation"):
        watermarks.read(watermark, client, conversation)


def test_a_forged_position_is_refused(watermarks: Watermarks) -> None:
    data = bytearray(base64.urlsafe_b64decode(watermarks.issue("acme", "c", 5) + "=="))
    data[15] += 1  # position 6, same tag

    with pytest.raises(InvalidWatermark):
        watermarks.read(base64.urlsafe_b64encode(bytes(data)).decode(), "acme", "c")


def test_a_watermark_of_another_key_is_refused(watermarks: Watermarks) -> None:
    other = Watermarks(lambda: "x" * 64).issue("acme", "c", 5)

    with pytest.raises(InvalidWatermark):
        watermarks.read(other, "acme", "c")


@pytest.mark.parametrize("garbage", ["", "abc", "!!!!", "é", "A" * 43, "A" * 400])
def test_garbage_is_refused(watermarks: Watermarks, garbage: str) -> None:
    with pytest.raises(InvalidWatermark):
        watermarks.read(garbage, "acme", "c")
