"""The delivery function as a bare handler: the same AWS call and the same signed POST, plain boto3 and urllib3."""

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

import boto3
import urllib3

dynamodb = boto3.client("dynamodb")
pool = urllib3.PoolManager()
clients: dict[str, dict[str, Any]] = {}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures: list[dict[str, str]] = []
    for record in event["Records"]:
        response = json.loads(record["body"])
        client_id = response["clientId"]
        if client_id not in clients:
            item_key = {"clientId": {"S": client_id}}
            clients[client_id] = dynamodb.get_item(TableName=os.environ["CLIENTS_TABLE"], Key=item_key)["Item"]
        client = clients[client_id]
        webhook_id, timestamp = f"msg_{response['botpressMessageId']}", int(time.time())
        key = base64.b64decode(client["webhookSecret"]["S"].removeprefix("whsec_"))
        digest = hmac.new(key, f"{webhook_id}.{timestamp}.{record['body']}".encode(), hashlib.sha256).digest()
        answer = pool.request(
            "POST",
            client["responseUrl"]["S"],
            body=record["body"].encode(),
            headers={
                "content-type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": "v1," + base64.b64encode(digest).decode(),
            },
            timeout=float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10")),
        )
        if not 200 <= answer.status < 300:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
