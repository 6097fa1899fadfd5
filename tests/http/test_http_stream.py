"""HttpConnection.stream against the recording server: chunks on the wire as they are pulled,
trailers, the response read, the connection kept; failures of the source close it."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from support.runtime_api_server import PREFIX
from support.stream_api import StreamApiServer

from sor.http.client import HttpConnection, encode_trailers

HEAD = {
    "Lambda-Runtime-Function-Response-Mode": "streaming",
    "Content-Type": "text/plain",
    "Trailer": "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
}


@pytest.fixture
def api() -> Iterator[StreamApiServer]:
    server = StreamApiServer()
    yield server
    server.close()


def _next(api: StreamApiServer) -> str:
    with urllib.request.urlopen(f"http://{api.address}{PREFIX}/invocation/next") as answer:
        return str(answer.headers["Lambda-Runtime-Aws-Request-Id"])


def _target(request_id: str) -> str:
    return f"{PREFIX}/invocation/{request_id}/response"


def test_each_chunk_is_on_the_wire_before_the_next_is_pulled(api: StreamApiServer) -> None:
    pending = api.submit({})
    request_id = _next(api)
    seen: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(3):
            if i:  # the server holds every earlier chunk before this one is even produced
                live = api.live(request_id)
                end = time.monotonic() + 10
                while len(live.chunks) < i and time.monotonic() < end:
                    time.sleep(0.002)
                seen.append(len(live.chunks))
            yield f"part {i};".encode()
        yield b""  # skipped: an empty chunk would end the body

    conn = HttpConnection(api.address)
    response = conn.stream("POST", _target(request_id), HEAD, chunks(), lambda: {"X-End": "1"})
    answer = api.wait_stream(pending)
    assert response.status == 202 and conn.connected
    assert seen == [1, 2]
    assert answer.problems == []
    assert [c.data for c in answer.chunks] == [b"part 0;", b"part 1;", b"part 2;"]
    assert answer.trailers == {"X-End": "1"}
    assert answer.header("Transfer-Encoding") == "chunked"
    assert answer.header("Trailer") == HEAD["Trailer"]
    # The connection is reused: the next request goes on it.
    again = api.submit({})
    second = conn.stream("POST", _target(_next(api)), HEAD, iter([b"x" * 200_000]), dict)
    assert second.status == 202
    big = api.wait_stream(again)
    assert [c.size for c in big.chunks] == [200_000] and big.body == b"x" * 200_000
    assert big.trailers == {}
    conn.close()


def test_a_failing_source_closes_the_connection_and_propagates(api: StreamApiServer) -> None:
    pending = api.submit({})
    request_id = _next(api)

    def chunks() -> Iterator[bytes]:
        yield b"first"
        raise RuntimeError("source failed")

    conn = HttpConnection(api.address)
    with pytest.raises(RuntimeError, match="source failed"):
        conn.stream("POST", _target(request_id), HEAD, chunks(), dict)
    assert not conn.connected
    answer = api.wait_stream(pending)
    assert answer.problems  # the server saw the body cut short, not a finished one
    assert answer.chunks[0].data == b"first"


def test_trailer_values_cannot_break_lines() -> None:
    assert encode_trailers({"A": "x\r\nB: forged", "C": "d"}) == (
        b"0\r\nA: x  B: forged\r\nC: d\r\n\r\n"
    )
    assert encode_trailers({}) == b"0\r\n\r\n"
