"""Built-in mappings of AWS event sources to CloudEvents (see docs/cloudevents.md for the tables).

S3 and SNS follow the CloudEvents project's AWS adapters (cloudevents/adapters/aws-s3.md,
aws-sns.md) to the letter; the other sources follow the conventions documented in
docs/cloudevents.md. Each mapper takes the whole Lambda event and returns one Record per record.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from sor.errors import EventMappingError
from sor.events.fields import (
    epoch_to_rfc3339,
    need,
    need_obj,
    need_str,
    not_json,
    parse_json_text,
    payload_fields,
)
from sor.events.model import SPECVERSION, Record, validate_cloudevent

JSON = "application/json"
GENERIC_TYPE = "com.amazonaws.lambda.invoke"
GENERIC_SOURCE = "urn:sor:lambda"

Mapper = Callable[[dict[str, Any]], tuple[Record, ...]]


def _records(event: dict[str, Any], kind: str) -> list[Any]:
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventMappingError(f"{kind} event: field 'Records' must be a list")
    return records


def _text_fields(text: str) -> dict[str, Any]:
    """A message body: JSON objects and arrays are parsed, anything else stays text."""
    parsed = parse_json_text(text)
    if not_json(parsed):
        return {"datacontenttype": "text/plain", "data": text}
    return {"datacontenttype": JSON, "data": parsed}


def _embedded(fields: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The CloudEvent a message carries in structured mode, if it carries one."""
    data = fields.get("data")
    if isinstance(data, dict) and "specversion" in data:
        validate_cloudevent(data, where)
        return data
    return None


def s3(event: dict[str, Any]) -> tuple[Record, ...]:
    """S3 notifications, per the adapter table (aws-s3.md)."""
    out = []
    for i, rec in enumerate(_records(event, "S3")):
        where = f"S3 event: Records[{i}]"
        response = need_obj(rec, "responseElements", where)
        s3_info = need_obj(rec, "s3", where)
        bucket = need_obj(s3_info, "bucket", f"{where}.s3")
        obj = need_obj(s3_info, "object", f"{where}.s3")
        ce: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": need_str(response, "x-amz-request-id", f"{where}.responseElements")
            + "."
            + need_str(response, "x-amz-id-2", f"{where}.responseElements"),
            "source": need_str(rec, "eventSource", where)
            + "."
            + need_str(rec, "awsRegion", where)
            + "."
            + need_str(bucket, "name", f"{where}.s3.bucket"),
            "type": "com.amazonaws.s3." + need_str(rec, "eventName", where),
            "datacontenttype": JSON,
            "subject": need_str(obj, "key", f"{where}.s3.object"),
            "time": need_str(rec, "eventTime", where),
            "data": rec,
        }
        out.append(Record(None, ce))
    return tuple(out)


def sns_message(msg: dict[str, Any], subscription_arn: str | None, where: str) -> dict[str, Any]:
    """One SNS message (the JSON an HTTP endpoint receives), per the adapter tables (aws-sns.md)."""
    kind = need_str(msg, "Type", where)
    # SubscriptionConfirmation: source is the topic ARN; the others: the subscription ARN.
    if kind == "SubscriptionConfirmation":
        source = need_str(msg, "TopicArn", where)
    elif subscription_arn:
        source = subscription_arn
    else:
        raise EventMappingError(f"{where}: missing the subscription ARN for a {kind} message")
    ce: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": need_str(msg, "MessageId", where),
        "source": source,
        "type": "com.amazonaws.sns." + kind,
        "datacontenttype": JSON,
        "time": need_str(msg, "Timestamp", where),
        "data": msg,
    }
    subject = msg.get("Subject")
    if kind == "Notification" and isinstance(subject, str) and subject:
        ce["subject"] = subject
    return ce


def sns(event: dict[str, Any]) -> tuple[Record, ...]:
    """SNS deliveries to Lambda: ``Records[].Sns`` is the message an HTTP endpoint would get."""
    out = []
    for i, rec in enumerate(_records(event, "SNS")):
        where = f"SNS event: Records[{i}]"
        msg = need_obj(rec, "Sns", where)
        arn = need_str(rec, "EventSubscriptionArn", where)
        out.append(Record(None, sns_message(msg, arn, f"{where}.Sns")))
    return tuple(out)


def sqs(event: dict[str, Any]) -> tuple[Record, ...]:
    """SQS messages; the item id is the messageId."""
    out = []
    for i, rec in enumerate(_records(event, "SQS")):
        where = f"SQS event: Records[{i}]"
        message_id = need_str(rec, "messageId", where)
        body = need(rec, "body", where)
        if not isinstance(body, str):
            raise EventMappingError(f"{where}: field 'body' must be a string")
        fields = _text_fields(body)
        ce = _embedded(fields, f"{where}.body")
        if ce is None:
            ce = {
                "specversion": SPECVERSION,
                "id": message_id,
                "source": need_str(rec, "eventSourceARN", where),
                "type": "com.amazonaws.sqs.message",
            }
            attrs = rec.get("attributes")
            sent = attrs.get("SentTimestamp") if isinstance(attrs, dict) else None
            if sent is not None:
                ce["time"] = epoch_to_rfc3339(sent, 1000, f"{where}.attributes.SentTimestamp")
            ce.update(fields)
        out.append(Record(message_id, ce))
    return tuple(out)


def kinesis(event: dict[str, Any]) -> tuple[Record, ...]:
    """Kinesis records: data decoded from base64, parsed when JSON; item id: sequence number."""
    out = []
    for i, rec in enumerate(_records(event, "Kinesis")):
        where = f"Kinesis event: Records[{i}]"
        k = need_obj(rec, "kinesis", where)
        seq = need_str(k, "sequenceNumber", f"{where}.kinesis")
        b64 = need(k, "data", f"{where}.kinesis")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise EventMappingError(f"{where}.kinesis: field 'data' is not valid base64") from None
        fields = payload_fields(raw, b64, None)
        ce = _embedded(fields, f"{where}.kinesis.data")
        if ce is None:
            ce = {
                "specversion": SPECVERSION,
                "id": need_str(rec, "eventID", where),
                "source": need_str(rec, "eventSourceARN", where),
                "type": "com.amazonaws.kinesis.record",
                "subject": need_str(k, "partitionKey", f"{where}.kinesis"),
            }
            ts = k.get("approximateArrivalTimestamp")
            if ts is not None:
                ce["time"] = epoch_to_rfc3339(ts, 1, f"{where}.kinesis.approximateArrivalTimestamp")
            ce.update(fields)
        out.append(Record(seq, ce))
    return tuple(out)


def dynamodb(event: dict[str, Any]) -> tuple[Record, ...]:
    """DynamoDB Streams records; data is the ``dynamodb`` object; item id: sequence number."""
    out = []
    for i, rec in enumerate(_records(event, "DynamoDB")):
        where = f"DynamoDB event: Records[{i}]"
        ddb = need_obj(rec, "dynamodb", where)
        seq = need_str(ddb, "SequenceNumber", f"{where}.dynamodb")
        ce: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": need_str(rec, "eventID", where),
            "source": need_str(rec, "eventSourceARN", where),
            "type": "com.amazonaws.dynamodb." + need_str(rec, "eventName", where),
        }
        ts = ddb.get("ApproximateCreationDateTime")
        if ts is not None:
            ce["time"] = epoch_to_rfc3339(ts, 1, f"{where}.dynamodb.ApproximateCreationDateTime")
        ce["datacontenttype"] = JSON
        ce["data"] = ddb
        out.append(Record(seq, ce))
    return tuple(out)


def eventbridge(event: dict[str, Any]) -> tuple[Record, ...]:
    """EventBridge events, scheduled events included: data is ``detail``."""
    where = "EventBridge event"
    ce: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": need_str(event, "id", where),
        "source": need_str(event, "source", where),
        "type": need_str(event, "detail-type", where),
    }
    resources = event.get("resources")
    if isinstance(resources, list) and resources and isinstance(resources[0], str):
        ce["subject"] = resources[0]
    time = event.get("time")
    if time is not None:
        ce["time"] = need_str(event, "time", where)
    ce["datacontenttype"] = JSON
    ce["data"] = event.get("detail", {})
    return (Record(None, ce),)


def generic(event: Any, request_id: str) -> tuple[Record, ...]:
    """An event no mapping recognises: wrapped whole as a ``com.amazonaws.lambda.invoke`` event."""
    ce = {
        "specversion": SPECVERSION,
        "id": request_id,
        "source": GENERIC_SOURCE,
        "type": GENERIC_TYPE,
        "datacontenttype": JSON,
        "data": event,
    }
    return (Record(None, ce),)


# The ``eventSource`` (``EventSource`` for SNS) of Records[0] names the source.
BY_EVENT_SOURCE: dict[str, tuple[str, Mapper]] = {
    "aws:s3": ("s3", s3),
    "aws:sns": ("sns", sns),
    "aws:sqs": ("sqs", sqs),
    "aws:kinesis": ("kinesis", kinesis),
    "aws:dynamodb": ("dynamodb", dynamodb),
}
# Sources whose records carry an item id Lambda's partial batch response understands.
PARTIAL_SOURCES = frozenset(("sqs", "kinesis", "dynamodb"))
