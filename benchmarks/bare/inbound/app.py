"""The inbound function as a bare handler: the same AWS calls and the same POST to the bot, plain boto3 and urllib3."""

import hashlib
import hmac
import json
import os
import time
from typing import Any

import boto3
import urllib3

dynamodb = boto3.client("dynamodb")
secrets = boto3.client("secretsmanager")
pool = urllib3.PoolManager()
clients: dict[str, dict[str, Any]] = {}
conversations: set[str] = set()
token: list[str] = []


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bearer = event["headers"]["authorization"].partition(" ")[2]
    client_id = bearer.partition(".")[0]
    if client_id not in clients:
        key = {"clientId": {"S": client_id}}
        clients[client_id] = dynamodb.get_item(TableName=os.environ["CLIENTS_TABLE"], Key=key)["Item"]
    if not hmac.compare_digest(hashlib.sha256(bearer.encode()).hexdigest(), clients[client_id]["tokenHash"]["S"]):
        return {"statusCode": 401}
    message = json.loads(event["body"])
    record = {"id": {"S": f"{client_id}:{message['messageId']}"}}
    now = int(time.time())
    dynamodb.put_item(
        TableName=os.environ["IDEMPOTENCY_TABLE"],
        Item={**record, "status": {"S": "INPROGRESS"}, "expiration": {"N": str(now + 86400)}},
        ConditionExpression="attribute_not_exists(id)",
    )
    conversation = f"{client_id}:{message['conversationId']}"
    if conversation not in conversations:
        dynamodb.update_item(
            TableName=os.environ["CONVERSATIONS_TABLE"],
            Key={"botConversationId": {"S": conversation}},
            UpdateExpression="SET clientId = :c, userId = :u, updatedAt = :n",
            ExpressionAttributeValues={":c": {"S": client_id}, ":u": {"S": message["userId"]}, ":n": {"N": str(now)}},
        )
        conversations.add(conversation)
    if not token:
        token.append(secrets.get_secret_value(SecretId=os.environ["BOT_TOKEN_SECRET"])["SecretString"])
    scoped = {name: f"{client_id}:{message[name]}" for name in ("userId", "messageId", "conversationId")}
    pool.request(
        "POST",
        os.environ["BOT_WEBHOOK_URL"],
        body=json.dumps({**message, **scoped}).encode(),
        headers={"content-type": "application/json", "authorization": f"bearer {token[0]}"},
        timeout=float(os.environ.get("BOT_TIMEOUT_SECONDS", "10")),
    )
    receipt = {"messageId": message["messageId"], "conversationId": message["conversationId"], "status": "forwarded"}
    dynamodb.update_item(
        TableName=os.environ["IDEMPOTENCY_TABLE"],
        Key=record,
        UpdateExpression="SET #s = :s, #d = :d",
        ExpressionAttributeNames={"#s": "status", "#d": "data"},
        ExpressionAttributeValues={":s": {"S": "COMPLETED"}, ":d": {"S": json.dumps(receipt)}},
    )
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(receipt)}
