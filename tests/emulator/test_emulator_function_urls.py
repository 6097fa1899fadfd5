"""Function URLs through the embedded emulator: the event built from the HTTP request and the
HTTP response built from the answer (tests/support/raw_bootstrap.py echoes or returns as told)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.emulated import (
    Served,
    head,
    http_request,
    read_all,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.close()


def test_the_function_url_event(served: Served) -> None:
    headers = (
        "X-Multi: one\r\nX-Multi: two\r\nCookie: c1=v1; c2=v2\r\nUser-Agent: probe/1\r\n"
        "Content-Type: application/octet-stream\r\n"
    )
    binary = b"\x00\xff\x01binary"
    request = http_request("PUT", "/some/path?a=1&a=2&b=x%20y&empty=", binary, headers)
    with served.connect(request) as sock:
        status, got, body = head(read_all(sock, bytearray()))
    assert status == 200 and ("content-type", "application/json") in got
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"]["x-multi"] == "one,two"
    assert event["headers"]["host"] == "fn.local" and "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == binary
    context = event["requestContext"]
    assert context["http"] == {
        "method": "PUT",
        "path": "/some/path",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe/1",
    }
    assert context["domainName"] == "fn.local" and context["stage"] == "$default"
    assert isinstance(context["timeEpoch"], int) and context["requestId"]
    text = json.dumps({"action": "echo", "text": "é"}).encode()
    request = http_request("POST", "/", text, "Content-Type: application/json\r\n")
    with served.connect(request) as sock:
        event = json.loads(head(read_all(sock, bytearray()))[2])
    assert event["isBase64Encoded"] is False and json.loads(event["body"])["text"] == "é"
    assert "queryStringParameters" not in event and "cookies" not in event


@pytest.mark.parametrize(
    ("answer", "status", "headers", "body"),
    [
        (
            {"statusCode": 201, "headers": {"x-a": "1"}, "cookies": ["s=1", "t=2"], "body": "hi"},
            201,
            [("content-type", "application/json"), ("x-a", "1"), ("set-cookie", "s=1")],
            b"hi",
        ),
        (
            {
                "statusCode": 200,
                "headers": {"Content-Type": "image/png"},
                "body": base64.b64encode(b"\x89PNG\x00").decode(),
                "isBase64Encoded": True,
            },
            200,
            [("content-type", "image/png")],
            b"\x89PNG\x00",
        ),
        ({"message": "no status"}, 200, [("content-type", "application/json")], None),
        ("just text", 200, [("content-type", "application/json")], b"just text"),
        ([1, 2], 200, [("content-type", "application/json")], b"[1, 2]"),
        ({"statusCode": 204}, 204, [], b""),
        ({"statusCode": 304, "body": "dropped"}, 304, [], b""),
        ({"statusCode": 200, "headers": {"x-bad": "é"}}, 502, [], None),
        # a name that is no HTTP token: CR/LF would forge a header, non-latin-1 garble the head
        (
            {"statusCode": 200, "headers": {"x-a\r\nset-cookie: forged=1\r\nx-b": "v"}},
            502,
            [],
            None,
        ),
        ({"statusCode": 200, "headers": {"x-名": "v"}}, 502, [], None),
        ({"statusCode": 200, "headers": {"": "v"}}, 502, [], None),
        ({"statusCode": "200"}, 502, [], None),
        ({"statusCode": 200, "body": {"not": "a string"}}, 502, [], None),
    ],
)
def test_the_function_url_response_rules(
    served: Served, answer: object, status: int, headers: list[tuple[str, str]], body: bytes | None
) -> None:
    raw = json.dumps(answer)
    spec = json.dumps({"action": "return", "raw": raw}).encode()
    with served.connect(
        http_request("POST", "/r", spec, "Content-Type: application/json\r\n")
    ) as s:
        got_status, got_headers, got_body = head(read_all(s, bytearray()))
    assert got_status == status
    assert all(name != "set-cookie" or value != "forged=1" for name, value in got_headers)
    for header in headers:
        assert header in got_headers
    if isinstance(answer, dict) and "cookies" in answer:
        assert [v for n, v in got_headers if n == "set-cookie"] == answer["cookies"]
    if status in (204, 304):
        assert got_body == b""
        return
    assert got_body == (body if body is not None else raw.encode()) or status == 502


def test_a_function_error_on_a_function_url_is_a_502(served: Served) -> None:
    spec = json.dumps({"action": "fail"}).encode()
    with served.connect(
        http_request("POST", "/x", spec, "Content-Type: application/json\r\n")
    ) as s:
        status, _, body = head(read_all(s, bytearray()))
    assert status == 502 and b"Internal Server Error" in body
