"""The recording server of streamed answers (tests/support/stream_api.py), driven byte by byte.

A raw socket writes the chunked encoding, so what the server records is checked against what
was really sent, independently of sor's own client.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
from support.runtime_api_server import PREFIX
from support.stream_api import StreamApiServer


@pytest.fixture
def api() -> Iterator[StreamApiServer]:
    server = StreamApiServer()
    yield server
    server.close()


def _next(api: StreamApiServer) -> str:
    with urllib.request.urlopen(f"http://{api.address}{PREFIX}/invocation/next") as answer:
        return str(answer.headers["Lambda-Runtime-Aws-Request-Id"])


def _open(api: StreamApiServer, request_id: str, headers: str) -> socket.socket:
    host, port = api.address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        (
            f"POST {PREFIX}/invocation/{request_id}/response HTTP/1.1\r\nHost: x\r\n{headers}\r\n"
        ).encode()
    )
    return sock


STREAM_HEAD = (
    "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
    "Content-Type: text/plain\r\n"
)


def test_chunks_times_and_trailers_are_recorded(api: StreamApiServer) -> None:
    pending = api.submit({"n": 1})
    request_id = _next(api)
    sock = _open(api, request_id, STREAM_HEAD)
    sock.sendall(b"5\r\nhello\r\n")
    live = api.live(request_id)
    while not live.chunks:
        time.sleep(0.005)
    sock.sendall(b"6;ext=1\r\n world\r\n")
    error = base64.b64encode(json.dumps({"errorType": "E", "errorMessage": "m"}).encode())
    sock.sendall(
        b"0\r\nLambda-Runtime-Function-Error-Type: E\r\n"
        b"Lambda-Runtime-Function-Error-Body: " + error + b"\r\n\r\n"
    )
    answer = api.wait_stream(pending)
    assert b" 202 " in sock.recv(4096)
    sock.close()
    assert answer.problems == []
    assert [c.data for c in answer.chunks] == [b"hello", b" world"]
    assert answer.chunks[1].extension == b"ext=1"
    assert answer.started_at <= answer.chunks[0].at <= answer.chunks[1].at
    assert answer.body == b"hello world" and answer.size == 11
    assert answer.header("content-type") == "text/plain"
    assert answer.error_type == "E"
    assert answer.error() == {"errorType": "E", "errorMessage": "m"}


def test_prelude_split_and_keep_budget() -> None:
    api = StreamApiServer(keep=4)
    try:
        pending = api.submit({})
        sock = _open(api, _next(api), STREAM_HEAD)
        sock.sendall(b"a\r\n{}\0\0\0\0\0\0\0\0\r\n3\r\nabc\r\n0\r\n\r\n")
        answer = api.wait_stream(pending)
        sock.close()
        assert answer.size == 13 and answer.body == b"{}\0\0"
        assert [c.size for c in answer.chunks] == [10, 3]
        assert answer.trailers == {} and answer.error() is None
    finally:
        api.close()


def test_bad_framing_is_a_recorded_problem(api: StreamApiServer) -> None:
    pending = api.submit({})
    sock = _open(api, _next(api), STREAM_HEAD)
    sock.sendall(b"zz\r\nhello\r\n")
    answer = api.wait_stream(pending)
    sock.close()
    assert answer.problems == ["bad chunk size line b'zz'"]


def test_a_plain_answer_is_still_an_answer(api: StreamApiServer) -> None:
    pending = api.submit({})
    sock = _open(api, _next(api), "Content-Length: 2\r\n")
    sock.sendall(b"ok")
    answer = api.wait_answer(pending)
    sock.close()
    assert type(answer).__name__ == "Answer" and answer.body == b"ok"


def test_repeated_header_fields_are_folded_and_kept_in_order(api: StreamApiServer) -> None:
    pending = api.submit({})
    head = STREAM_HEAD.replace(
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n",
        "Trailer: Lambda-Runtime-Function-Error-Type\r\n"
        "Trailer: Lambda-Runtime-Function-Error-Body\r\n",
    )
    sock = _open(api, _next(api), head)
    sock.sendall(b"0\r\n\r\n")
    answer = api.wait_stream(pending)
    sock.close()
    assert answer.header("trailer") == (
        "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    )
    assert [v for k, v in answer.header_lines if k == "Trailer"] == [
        "Lambda-Runtime-Function-Error-Type",
        "Lambda-Runtime-Function-Error-Body",
    ]
