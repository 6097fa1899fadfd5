"""The function URL mapping (sor.emulator.function_url): pure functions, checked value by value."""

from __future__ import annotations

import base64
import json

import pytest

from sor.emulator.function_url import (
    BAD_GATEWAY,
    MAX_PRELUDE,
    request_event,
    response_of,
    split_prelude,
)

NOW = 1_700_000_000.123


def test_the_event_of_a_get_without_body_or_query() -> None:
    event = request_event(
        "GET", "/", [("Host", "abc.lambda-url.local")], b"", "10.0.0.1", "r1", NOW
    )
    assert event == {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.local"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc",
            "domainName": "abc.lambda-url.local",
            "domainPrefix": "abc",
            "http": {
                "method": "GET",
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "10.0.0.1",
                "userAgent": "",
            },
            "requestId": "r1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "14/Nov/2023:22:13:20 +0000",
            "timeEpoch": 1_700_000_000_123,
        },
        "isBase64Encoded": False,
    }


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("application/json", b'{"a": 1}', True),
        ("text/plain; charset=utf-8", "é".encode(), True),
        ("application/vnd.api+json", b"{}", True),
        ("application/x-www-form-urlencoded", b"a=1&b=2", True),
        ("application/octet-stream", b"plain ascii", False),
        ("", b"no type", False),
        ("text/plain", b"\xff\xfe not utf-8", False),
    ],
)
def test_a_body_is_text_or_base64(content_type: str, body: bytes, text: bool) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    event = request_event("POST", "/p", headers, body, "1.2.3.4", "r", NOW)
    assert event["isBase64Encoded"] is not text
    got = event["body"].encode() if text else base64.b64decode(event["body"])
    assert got == body


def test_cookies_headers_and_query_parameters() -> None:
    headers = [("Cookie", "a=1; b=2"), ("cookie", "c=3"), ("X-A", "1"), ("x-a", "2")]
    event = request_event("GET", "/q?x=1&x=2&y=%2F&z", headers, b"", "::1", "r", NOW)
    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert event["headers"] == {"x-a": "1,2"}
    assert event["queryStringParameters"] == {"x": "1,2", "y": "/", "z": ""}
    assert event["rawQueryString"] == "x=1&x=2&y=%2F&z"


def test_a_response_object_gives_status_headers_cookies_and_body() -> None:
    answer = response_of(
        json.dumps(
            {
                "statusCode": 302,
                "headers": {"Location": "/next", "X-N": 5, "X-B": True},
                "cookies": ["a=1", "b=2; Secure"],
                "body": "moved",
            }
        ).encode()
    )
    assert answer.status == 302
    assert answer.headers == [
        ("Content-Type", "application/json"),
        ("Location", "/next"),
        ("X-N", "5"),
        ("X-B", "true"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2; Secure"),
    ]
    assert answer.body == b"moved"


def test_other_json_is_a_200_json_body() -> None:
    for payload, body in [
        (b'{"message": "hi"}', b'{"message": "hi"}'),
        (b'"text"', b"text"),
        (b"42", b"42"),
        (b"null", b"null"),
        (b"[1,2]", b"[1,2]"),
    ]:
        answer = response_of(payload)
        assert (answer.status, answer.headers, answer.body) == (
            200,
            [("Content-Type", "application/json")],
            body,
        )


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"statusCode": 99}',
        b'{"statusCode": 101}',
        b'{"statusCode": 600}',
        b'{"statusCode": true}',
        b'{"statusCode": 200, "body": 5}',
        b'{"statusCode": 200, "headers": ["a"]}',
        b'{"statusCode": 200, "headers": {"a": {"b": 1}}}',
        b'{"statusCode": 200, "cookies": [1]}',
        b'{"statusCode": 200, "body": "!!", "isBase64Encoded": true}',
    ],
)
def test_what_breaks_the_rules_is_a_502(payload: bytes) -> None:
    assert response_of(payload) is BAD_GATEWAY


def test_a_base64_body_is_decoded() -> None:
    raw = json.dumps({"statusCode": 200, "body": "AAEC", "isBase64Encoded": True}).encode()
    assert response_of(raw).body == b"\x00\x01\x02"


def test_the_prelude_of_an_http_stream() -> None:
    prelude = json.dumps({"statusCode": 201, "cookies": ["k=v"]}).encode()
    assert split_prelude(prelude) is None  # not whole yet
    assert split_prelude(prelude + b"\0" * 7) is None
    status, headers, rest = split_prelude(prelude + b"\0" * 8 + b"body") or (0, [], b"")
    assert (status, rest) == (201, b"body")
    assert headers == [("Content-Type", "application/octet-stream"), ("Set-Cookie", "k=v")]
    assert split_prelude(b"\0" * 8) == (200, [("Content-Type", "application/octet-stream")], b"")


@pytest.mark.parametrize(
    "buffer",
    [
        b"[1]" + b"\0" * 8,
        b"{nope" + b"\0" * 8,
        b'{"statusCode": 1}' + b"\0" * 8,
        b"x" * (MAX_PRELUDE + 1),
    ],
)
def test_a_bad_prelude_is_refused(buffer: bytes) -> None:
    with pytest.raises(ValueError):
        split_prelude(buffer)
