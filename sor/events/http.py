"""HTTP triggers (API Gateway REST and HTTP APIs, function URLs) and CloudEvents.

Requests: a CloudEvent in binary mode (``ce-*`` headers) or structured mode
(``application/cloudevents+json``, or ``application/cloudevents-batch+json`` for several) is
decoded as that event, per the CloudEvents HTTP protocol binding; an SNS HTTP(S) delivery
(``x-amz-sns-message-type`` header) follows the aws-sns.md adapter table; any other request
becomes a ``com.amazonaws.lambda.http.request`` event whose data is the request event itself.
Responses: a CloudEvent a handler returns becomes a binary-mode HTTP response.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sor.errors import EventMappingError
from sor.events.fields import (
    b64decode,
    epoch_to_rfc3339,
    is_json_type,
    new_id,
    payload_fields,
)
from sor.events.headers import attribute_value
from sor.events.model import SPECVERSION, Record, validate_cloudevent

HTTP_TYPE = "com.amazonaws.lambda.http.request"
HTTP_SOURCE = "urn:sor:http"  # a request that names no domain, API or target group
STRUCTURED = "application/cloudevents+json"
STRUCTURED_BATCH = "application/cloudevents-batch+json"
# HTTP binding 3.1.3.2: printable ASCII except space, double quote and percent go as they are.
_HEADER_SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in ' "%')


def is_http(event: dict[str, Any]) -> bool:
    """True for API Gateway REST (payload 1.0), HTTP API (2.0), function URL and ALB events."""
    ctx = event.get("requestContext")
    if not isinstance(ctx, dict):
        return False
    return "httpMethod" in event or (event.get("version") == "2.0" and "http" in ctx)


def multi_value_headers(event: Any) -> bool:
    """True for an ALB target group with multi-value headers on: its event has
    ``multiValueHeaders`` and no ``headers``, and its answer must use ``multiValueHeaders``."""
    if not isinstance(event, dict):
        return False
    ctx = event.get("requestContext")
    return (
        isinstance(ctx, dict)
        and "elb" in ctx
        and isinstance(event.get("multiValueHeaders"), dict)
        and not event.get("headers")
    )


def for_trigger(response: dict[str, Any], multi_value: bool) -> dict[str, Any]:
    """``response`` with its headers as the trigger wants them (see ``multi_value_headers``)."""
    if multi_value and "headers" in response:
        headers = response.pop("headers")
        response["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    return response


def _headers(event: dict[str, Any]) -> dict[str, str]:
    """Request headers with lowercase names (REST APIs keep the client's case)."""
    headers = event.get("headers")
    out: dict[str, str] = {}
    if isinstance(headers, dict):
        for name, value in headers.items():
            if isinstance(value, str):
                out[name.lower()] = value
    multi = event.get("multiValueHeaders")
    if not out and isinstance(multi, dict):
        for name, values in multi.items():
            if isinstance(values, list):
                out[name.lower()] = ",".join(str(v) for v in values)
    return out


def _body(event: dict[str, Any]) -> tuple[bytes, str | None]:
    """The raw body and, when the event carried it base64-encoded, its base64 text."""
    body = event.get("body")
    if body is None:
        return b"", None
    if not isinstance(body, str):
        raise EventMappingError("HTTP event: field 'body' must be a string")
    if event.get("isBase64Encoded"):
        return b64decode(body, "HTTP event: body"), body
    return body.encode("utf-8"), None


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def http_records(event: dict[str, Any], request_id: str | None) -> tuple[str, tuple[Record, ...]]:
    """The source kind ("http" or "sns") and the records of an HTTP request event.

    The content mode is told by Content-Type first (binding 3: "prefixed with
    application/cloudevents-batch" is batched, "application/cloudevents" structured, anything
    else binary), so a structured event that also carries ``ce-`` headers (3.2.3) is structured.
    """
    headers = _headers(event)
    media = _media(headers.get("content-type"))
    if media == STRUCTURED:
        ce = _json_body(event, "HTTP structured-mode CloudEvent")
        validate_cloudevent(ce, "HTTP structured-mode CloudEvent")
        return "http", (Record(None, ce),)
    if media == STRUCTURED_BATCH:
        batch = _json_body(event, "HTTP batched CloudEvents")
        if not isinstance(batch, list):
            raise EventMappingError("HTTP batched CloudEvents: body must be a JSON array")
        for i, ce in enumerate(batch):
            validate_cloudevent(ce, f"HTTP batched CloudEvents: [{i}]")
        return "http", tuple(Record(None, ce) for ce in batch)
    if "ce-specversion" in headers:
        # An event format sor cannot read (application/cloudevents+avro) is also taken as binary,
        # as binding 3 allows.
        return "http", (Record(None, _binary(headers, event)),)
    if "x-amz-sns-message-type" in headers:
        return "sns", (Record(None, _sns_http(headers, event)),)
    return "http", (Record(None, _request_event(event, request_id)),)


def _json_body(event: dict[str, Any], where: str) -> Any:
    raw, _ = _body(event)
    try:
        return json.loads(raw)
    except ValueError:
        raise EventMappingError(f"{where}: body is not valid JSON") from None


def _binary(headers: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    """A binary-mode CloudEvent: attributes from ``ce-`` headers, data from the body.

    Header values are unquoted and percent-decoded (binding 3.1.3.2, sor.events.headers).
    Content-Type is ``datacontenttype`` (3.1.1); without one nothing is inferred: the body is
    opaque bytes, ``data_base64`` with no ``datacontenttype`` (JSON format 3.1.1 and its last
    example). A ``ce-datacontenttype`` header, which 3.1.1 forbids, is ignored.
    """
    where = "HTTP binary-mode CloudEvent"
    ce: dict[str, Any] = {}
    for name, value in headers.items():
        if not name.startswith("ce-") or len(name) == 3 or name == "ce-datacontenttype":
            continue
        attribute = name[3:]
        if attribute == "data":
            reason = "'data' is no attribute: in binary mode the body is the data (3.1.2)"
            raise EventMappingError(f"{where}: {reason}", attribute="data", reason=reason)
        ce[attribute] = attribute_value(value, attribute, where)
    raw, b64 = _body(event)
    content_type = headers.get("content-type") or None
    if content_type is not None:
        try:
            ce.update(payload_fields(raw, b64, content_type))
        except EventMappingError as exc:  # the body does not parse as its Content-Type says
            raise EventMappingError(f"{where}: {exc.message}", attribute="data") from None
    elif raw:
        ce["data_base64"] = b64 or base64.b64encode(raw).decode("ascii")
    validate_cloudevent(ce, where)
    return ce


def _sns_http(headers: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    """An SNS HTTP(S) delivery, attribute by attribute as aws-sns.md's tables say."""
    where = "SNS HTTP delivery"
    msg = _json_body(event, where)
    if not isinstance(msg, dict):
        raise EventMappingError(f"{where}: body must be a JSON object")
    kind = headers["x-amz-sns-message-type"]
    source_header = (
        "x-amz-sns-topic-arn"
        if kind == "SubscriptionConfirmation"
        else "x-amz-sns-subscription-arn"
    )
    ce: dict[str, Any] = {"specversion": SPECVERSION}
    for attr, header in (("id", "x-amz-sns-message-id"), ("source", source_header)):
        if not headers.get(header):
            raise EventMappingError(f"{where}: missing header {header!r}")
        ce[attr] = headers[header]
    ce["type"] = "com.amazonaws.sns." + kind
    ce["datacontenttype"] = "application/json"
    subject = msg.get("Subject")
    if kind == "Notification" and isinstance(subject, str) and subject:
        ce["subject"] = subject
    timestamp = msg.get("Timestamp")
    if not isinstance(timestamp, str):
        raise EventMappingError(f"{where}: body: missing field 'Timestamp'")
    ce["time"] = timestamp
    ce["data"] = msg
    validate_cloudevent(ce, where)
    return ce


def _request_event(event: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    """A plain HTTP request as a CloudEvent carrying the request event as its data."""
    ctx: dict[str, Any] = event["requestContext"]
    http = ctx.get("http")
    if not isinstance(http, dict):
        http = {}
    method = http.get("method") or event.get("httpMethod") or ctx.get("httpMethod")
    path = event.get("rawPath") or event.get("path") or http.get("path")
    domain, api, elb = ctx.get("domainName"), ctx.get("apiId"), ctx.get("elb")
    target_group = elb.get("targetGroupArn") if isinstance(elb, dict) else None
    if isinstance(domain, str) and domain:
        source = f"https://{domain.strip()}"
    elif isinstance(api, str) and api:
        source = f"urn:aws:apigateway:{api}"
    elif isinstance(target_group, str) and target_group:
        source = target_group  # an ALB: the target group that invoked the function
    else:
        source = HTTP_SOURCE
    rid = ctx.get("requestId")
    ce: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": rid if isinstance(rid, str) and rid else request_id or new_id(),
        "source": source,
        "type": HTTP_TYPE,
    }
    if isinstance(path, str) and path:
        ce["subject"] = path
    epoch = ctx.get("timeEpoch", ctx.get("requestTimeEpoch"))
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
        ce["time"] = epoch_to_rfc3339(epoch, 1000, "HTTP event: requestContext.timeEpoch")
    if isinstance(method, str) and method:
        ce["httpmethod"] = method
    ce["datacontenttype"] = "application/json"
    ce["data"] = event
    return ce


def to_http_response(ce: dict[str, Any], multi_value: bool = False) -> dict[str, Any]:
    """A CloudEvent as a binary-mode HTTP response in the API Gateway / function URL / ALB
    format (``multi_value``: an ALB with multi-value headers, see ``multi_value_headers``)."""
    return for_trigger(_binary_response(ce), multi_value)


def _binary_response(ce: dict[str, Any]) -> dict[str, Any]:
    from urllib.parse import quote

    headers: dict[str, str] = {}
    for name, value in ce.items():
        if name in ("data", "data_base64", "datacontenttype") or value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        headers["ce-" + name] = quote(text, safe=_HEADER_SAFE)
    content_type = ce.get("datacontenttype")
    response: dict[str, Any] = {"statusCode": 200, "headers": headers}
    if "data_base64" in ce:
        headers["content-type"] = content_type or "application/octet-stream"
        response["body"] = ce["data_base64"]
        response["isBase64Encoded"] = True
        return response
    if "data" in ce and ce["data"] is not None:
        data = ce["data"]
        content_type = content_type or "application/json"
        headers["content-type"] = content_type
        if isinstance(data, str) and not is_json_type(content_type):
            response["body"] = data
        elif isinstance(data, (bytes, bytearray)):
            response["body"] = base64.b64encode(data).decode("ascii")
            response["isBase64Encoded"] = True
            return response
        else:
            response["body"] = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    else:
        if content_type:
            headers["content-type"] = content_type
        response["body"] = ""
    response["isBase64Encoded"] = False
    return response
