"""The bot-response function as a bare handler: the same AWS calls, plain boto3."""

import hashlib
import hmac
import json
import os
from typing import Any

import boto3

dynamodb = boto3.client("dynamodb")
secrets = boto3.client("secretsmanager")
sns = boto3.client("sns")
conversations: dict[str, dict[str, Any]] = {}
path_secret: list[str] = []


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not path_secret:
        path_secret.append(secrets.get_secret_value(SecretId=os.environ["BOT_RESPONSE_SECRET"])["SecretString"])
    if not hmac.compare_digest(event["pathParameters"]["secret"].encode(), path_secret[0].encode()):
        return {"statusCode": 403}
    response = json.loads(event["body"])
    bot_conversation = response["conversationId"]
    if bot_conversation not in conversations:
        conversations[bot_conversation] = dynamodb.get_item(
            TableName=os.environ["CONVERSATIONS_TABLE"],
            Key={"botConversationId": {"S": bot_conversation}},
            ProjectionExpression="clientId, conversationId, userId",
        )["Item"]
    conversation = {name: value["S"] for name, value in conversations[bot_conversation].items()}
    routed = {**response, **{k: conversation[k] for k in ("clientId", "conversationId", "userId")}}
    attributes = {k: routed[k] for k in ("clientId", "conversationId", "userId", "type")}
    sns.publish(
        TopicArn=os.environ["RESPONSES_TOPIC_ARN"],
        Message=json.dumps(routed),
        MessageGroupId=hashlib.sha256(json.dumps([routed["clientId"], routed["conversationId"]]).encode()).hexdigest(),
        MessageDeduplicationId=hashlib.sha256(response["botpressMessageId"].encode()).hexdigest(),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"status": "published"}'}
