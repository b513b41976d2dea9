"""The operations topic (a standard SNS topic): one message per operational event (relay.operations), with the
message attributes `clientId` and `type` a subscription filters on. An event that cannot be published is logged:
a notice is never worth failing a delivery or a request for."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.observability import logger
from relay.operations import OperationalEvent


class OperationsPublisher:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, event: OperationalEvent) -> None:
        try:
            self._sns.publish(
                TopicArn=self._topic_arn,
                Message=event.body(),
                MessageAttributes={
                    "clientId": {"DataType": "String", "StringValue": event.client_id},
                    "type": {"DataType": "String", "StringValue": event.type},
                },
            )
        except (BotoCoreError, ClientError) as error:
            logger.error("operational event not published", extra={"event": event.type, "error": str(error)})
            return
        logger.info("operational event published", extra={"event": event.type, "client_id": event.client_id})
