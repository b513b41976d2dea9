"""The WebSocket API's @connections endpoint: posting one frame to one open connection."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

FRAME_MAX_BYTES = 128 * 1024
"""The most a post to a connection carries (API Gateway's WebSocket message limit)."""


class ConnectionGone(Exception):
    """The connection is closed, or not open yet (its $connect has not returned): API Gateway's 410."""


class ConnectionsApi:
    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def at(cls, endpoint_url: str) -> ConnectionsApi:
        # Short timeouts: a post is a small write to API Gateway; a stuck one must not hold up the conversation.
        config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
        return cls(boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url, config=config))

    def post(self, connection_id: str, frame: bytes) -> None:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=frame)
        except self._client.exceptions.GoneException:
            raise ConnectionGone(connection_id) from None
