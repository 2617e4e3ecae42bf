"""The peer a user would otherwise write: the Twilio status webhook as a Python Lambda.

Equivalent to byosms' receive-status for Twilio: boto3 clients built at init, then per request
the org's connection (DynamoDB Query), its secret (Secrets Manager), the signature checked with
Twilio's official RequestValidator, the form parsed, the status event written (DynamoDB PutItem)
and Twilio's empty TwiML answer. Run under awslambdaric, as the Lambda Python runtime does.
"""

import base64
import json
import os
import urllib.parse

import boto3
from twilio.request_validator import RequestValidator

CONNECTIONS = os.environ["BYOSMS_CONNECTIONS_TABLE"]
MESSAGES = os.environ["BYOSMS_MESSAGES_TABLE"]
PREFIX = os.environ.get("BYOSMS_SECRET_PREFIX", "byosms/")
BASE = os.environ["BYOSMS_PUBLIC_BASE_URL"].rstrip("/")

dynamodb = boto3.client("dynamodb")
secrets = boto3.client("secretsmanager")


def answer(status, body, content_type="text/plain"):
    return {"statusCode": status, "headers": {"content-type": content_type}, "body": body}


def handler(event, context):
    path = event["rawPath"]
    org_id = path.rstrip("/").rsplit("/", 1)[-1]
    found = dynamodb.query(
        TableName=CONNECTIONS,
        KeyConditionExpression="orgId = :org",
        ExpressionAttributeValues={":org": {"S": org_id}},
    )["Items"]
    if not found:
        return answer(404, "unknown org")
    connection_id = found[0]["connectionId"]["S"]
    secret = json.loads(
        secrets.get_secret_value(SecretId=f"{PREFIX}{org_id}/{connection_id}")["SecretString"]
    )
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    params = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    url = BASE + path + (("?" + event["rawQueryString"]) if event.get("rawQueryString") else "")
    signature = {k.lower(): v for k, v in event.get("headers", {}).items()}.get("x-twilio-signature", "")
    if not RequestValidator(secret["authToken"]).validate(url, params, signature):
        return answer(403, "invalid signature")
    sid, status = params.get("MessageSid"), params.get("MessageStatus")
    if not sid or not status:
        return answer(400, "MessageSid and MessageStatus are required")
    dynamodb.put_item(
        TableName=MESSAGES,
        Item={
            "pk": {"S": f"ORG#{org_id}"},
            "sk": {"S": f"EVENT#{connection_id}#{sid}#{status}"},
            "status": {"S": status},
        },
    )
    return answer(200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>", "text/xml")
