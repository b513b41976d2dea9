"""Watermarks: a position in one client's conversation, opaque to the client and bound to that conversation.

A watermark is the position (16 bytes) and an HMAC-SHA256 (first 16 bytes) over the client, the conversation
and the position, in URL-safe base64: a client cannot move it into another conversation or make up a position.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable

_POSITION_BYTES = 16  # SQS sequence numbers are 128-bit
_TAG_BYTES = 16


class InvalidWatermark(ValueError):
    """Not a watermark this relay issued for this conversation."""


class Watermarks:
    def __init__(self, key: Callable[[], str]) -> None:
        self._key = key

    def issue(self, client_id: str, conversation_id: str, position: int) -> str:
        raw = position.to_bytes(_POSITION_BYTES, "big")
        return base64.urlsafe_b64encode(raw + self._tag(client_id, conversation_id, raw)).decode().rstrip("=")

    def read(self, watermark: str, client_id: str, conversation_id: str) -> int:
        """The position `watermark` stands for; InvalidWatermark unless it was issued for this conversation."""
        try:
            data = base64.urlsafe_b64decode(watermark + "=" * (-len(watermark) % 4))
        except (binascii.Error, ValueError):
            raise InvalidWatermark("not a watermark: pass back the `watermark` of an earlier answer") from None
        raw, tag = data[:_POSITION_BYTES], data[_POSITION_BYTES:]
        if len(data) != _POSITION_BYTES + _TAG_BYTES or not hmac.compare_digest(
            tag, self._tag(client_id, conversation_id, raw)
        ):
            raise InvalidWatermark("not a watermark of this conversation: pass back the `watermark` of its answers")
        return int.from_bytes(raw, "big")

    def _tag(self, client_id: str, conversation_id: str, raw: bytes) -> bytes:
        # Length-prefixed, so no two (client, conversation) pairs give the same message.
        message = b"".join(
            len(part).to_bytes(4, "big") + part for part in (client_id.encode(), conversation_id.encode())
        )
        return hmac.new(self._key().encode(), message + raw, hashlib.sha256).digest()[:_TAG_BYTES]
