"""sor.http.server: bounded, validated request bodies and whole answers, on a real server."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from sor.http.server import RequestHandler

LIMIT = 100


class Echo(RequestHandler):
    """POST: the body (200) or its size over LIMIT (413). GET: a header that cannot be sent."""

    raised: list[Exception] = []

    def do_POST(self) -> None:
        body = self.read_body(LIMIT)
        if body is None:
            return
        if isinstance(body, int):
            self.answer(413, str(body).encode())
        else:
            self.answer(200, body)

    def do_GET(self) -> None:
        try:
            self.answer(200, b"x", {"X-Name": "Zoë"})
        except ValueError as exc:
            self.raised.append(exc)


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes, str | None]:
    """Send ``request`` on ``sock``; the answer's status, body and Connection header."""
    if request:
        sock.sendall(request)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read(), response.getheader("Connection")


def post(port: int, headers: str, body: bytes) -> tuple[int, bytes, str | None]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        return exchange(sock, f"POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + body)


CHUNKED = "Transfer-Encoding: chunked\r\n"


def test_bodies_within_the_limit(port: int) -> None:
    assert post(port, "Content-Length: 5\r\n", b"hello")[:2] == (200, b"hello")
    chunks = b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
    assert post(port, CHUNKED, chunks)[:2] == (200, b"abcde")
    assert post(port, "", b"")[:2] == (200, b"")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (CHUNKED, b"zz\r\nab\r\n0\r\n\r\n"),
        (CHUNKED, b"-1\r\nab\r\n0\r\n\r\n"),
        (CHUNKED, b"2\r\nabXY0\r\n\r\n"),  # no CRLF after the data
        ("Content-Length: -3\r\n", b"abc"),
        ("Content-Length: 1e2\r\n", b""),
        ("Content-Length: 10\r\n", b"short"),  # then the client stops sending
    ],
)
def test_malformed_bodies_get_400_and_close(port: int, headers: str, body: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        request = f"POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + body
        if headers.startswith("Content-Length: 10"):
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            request = b""
        status, _, connection = exchange(sock, request)
        assert (status, connection) == (400, "close")
        assert sock.recv(1) == b""  # closed: what followed cannot be misread as a request


def test_oversized_bodies_are_dropped_and_the_connection_kept(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        big = b"x" * (LIMIT + 1)
        assert exchange(sock, b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n" + big)[:2] == (
            413,
            b"101",
        )
        chunks = b"40\r\n" + b"y" * 64 + b"\r\n40\r\n" + b"z" * 64 + b"\r\n0\r\n\r\n"
        request = f"POST / HTTP/1.1\r\n{CHUNKED}\r\n".encode() + chunks
        assert exchange(sock, request)[:2] == (413, b"128")
        request = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
        assert exchange(sock, request)[:2] == (200, b"ok")  # the same connection still works


def test_a_huge_declared_size_is_refused_without_reading(port: int) -> None:
    status, body, connection = post(port, CHUNKED, b"ffffffffffff\r\n")
    assert (status, body, connection) == (413, str(0xFFFFFFFFFFFF).encode(), "close")
    status, _, connection = post(port, "Content-Length: 99999999999\r\n", b"")
    assert (status, connection) == (413, "close")


def test_a_header_that_cannot_be_sent_raises_and_sends_nothing(port: int) -> None:
    Echo.raised.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100) == b""
    assert len(Echo.raised) == 1 and "X-Name" in str(Echo.raised[0])
