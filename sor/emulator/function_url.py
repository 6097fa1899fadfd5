"""Function URLs, as `sor local serve` emulates them: the HTTP request as the event (payload format
2.0) and the function's answer as the HTTP response, by Lambda's rules ("Invoking Lambda function
URLs"). Pure functions, no IO: the server is ``sor.emulator.invoke_endpoint``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
PRELUDE_END = b"\0" * 8
MAX_PRELUDE = 64 * 1024  # bytes of an HTTP stream's prelude JSON
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES = ("+json", "+xml")
_TEXT_EXACT = ("application/x-www-form-urlencoded", "application/graphql")


class HttpAnswer:
    """An HTTP response to send: status, headers (a list: Set-Cookie repeats), body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


BAD_GATEWAY = HttpAnswer(
    502, [("Content-Type", "application/json")], b'{"Message":"Internal Server Error"}'
)


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith(_TEXT_TYPES) or kind.endswith(_TEXT_SUFFIXES) or kind in _TEXT_EXACT


def request_event(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    source_ip: str,
    request_id: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The function URL event (payload format 2.0) of one HTTP request."""
    now = time.time() if now is None else now
    parts = urlsplit(target)
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    host = joined.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    if parts.query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": "anonymous",
        "apiId": host.split(".", 1)[0],
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0],
        "http": {
            "method": method,
            "path": parts.path or "/",
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if body:
        text = _is_text(joined.get("content-type", ""))
        try:
            decoded = body.decode("utf-8") if text else None
        except UnicodeDecodeError:
            decoded = None
        if decoded is not None:
            event["body"], event["isBase64Encoded"] = decoded, False
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["isBase64Encoded"] = False
    return event


def response_of(payload: bytes) -> HttpAnswer:
    """The HTTP response for a function's (whole) answer, by the function URL rules: a JSON
    object with ``statusCode`` gives the status, headers, cookies and body; any other JSON value
    is a 200 ``application/json`` body (a string: its text). 502 for what breaks the rules."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return BAD_GATEWAY
    if not isinstance(value, dict) or "statusCode" not in value:
        body = value if isinstance(value, str) else payload.decode("utf-8", "replace")
        return HttpAnswer(200, [("Content-Type", "application/json")], body.encode())
    head = _head(value)
    if head is None:
        return BAD_GATEWAY
    raw = value.get("body")
    if raw is None:
        body_bytes = b""
    elif not isinstance(raw, str):
        return BAD_GATEWAY
    elif value.get("isBase64Encoded") is True:
        try:
            body_bytes = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return BAD_GATEWAY
    else:
        body_bytes = raw.encode("utf-8")
    status, headers = head
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.insert(0, ("Content-Type", "application/json"))
    return HttpAnswer(status, headers, body_bytes)


def _head(value: dict[str, Any]) -> tuple[int, list[tuple[str, str]]] | None:
    """Status and headers of a response object or an HTTP stream's prelude; None if invalid."""
    status = value.get("statusCode", 200)
    # 1xx statuses are interim: they cannot end a response
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        return None
    given = value.get("headers") or {}
    cookies = value.get("cookies") or []
    if not isinstance(given, dict) or not isinstance(cookies, list):
        return None
    headers: list[tuple[str, str]] = []
    for name, item in given.items():
        if isinstance(item, (dict, list)) or item is None:
            return None
        text = str(item).lower() if isinstance(item, bool) else str(item)
        headers.append((str(name), text))
    for cookie in cookies:
        if not isinstance(cookie, str):
            return None
        headers.append(("Set-Cookie", cookie))
    return status, headers


def split_prelude(buffer: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """An HTTP stream's status and headers from its prelude (JSON, then 8 NUL bytes), and the
    body bytes after it; None while the prelude is not whole yet. ValueError when it is not
    a prelude (over ``MAX_PRELUDE``, not a JSON object, or breaking the response rules)."""
    end = buffer.find(PRELUDE_END)
    if end < 0:
        if len(buffer) > MAX_PRELUDE:
            raise ValueError(f"no end of the prelude in the first {MAX_PRELUDE} bytes")
        return None
    try:
        value = json.loads(buffer[:end]) if buffer[:end].strip() else {}
    except (ValueError, RecursionError):
        raise ValueError("the prelude is not JSON") from None
    head = _head(value) if isinstance(value, dict) else None
    if head is None:
        raise ValueError("the prelude is not a valid response head")
    status, headers = head
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.insert(0, ("Content-Type", "application/octet-stream"))
    return status, headers, buffer[end + len(PRELUDE_END) :]
