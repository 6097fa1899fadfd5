"""sor.http.client against raw socket servers on 127.0.0.1 that answer byte for byte."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from support.runtime_api_server import read_request

from sor.http.client import (
    ConnectionClosed,
    HttpConnection,
    Interrupted,
    ProtocolError,
    encode_request,
    parse_head,
    split_address,
)

Script = Callable[[socket.socket, int], None]


class RawServer:
    """Accepts connections and lets ``script(conn, index)`` talk to each; records the requests."""

    def __init__(self, script: Script) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            # A client that went away ends the script.
            with conn, contextlib.suppress(OSError):
                self.script(conn, self.connections)

    def read_request(self, conn: socket.socket) -> bytes:
        """One whole request (head and Content-Length body), recorded and returned."""
        head, body = read_request(conn)
        self.requests.append(head + b"\r\n\r\n" + body)
        return self.requests[-1]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def make(script: Script) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _connection(server: RawServer) -> HttpConnection:
    return HttpConnection(server.address)


def test_keep_alive_reuses_one_connection(serve: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, _: int) -> None:
        for n in range(3):
            server.read_request(conn)
            body = f"answer {n}".encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = serve(script)
    client = _connection(server)
    try:
        bodies = [client.request("GET", f"/x/{n}", {}).body for n in range(3)]
    finally:
        client.close()
    assert bodies == [b"answer 0", b"answer 1", b"answer 2"]
    assert server.connections == 1


def test_request_is_one_buffer_with_host_length_and_body(
    serve: Callable[[Script], RawServer],
) -> None:
    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    server = serve(script)
    client = _connection(server)
    try:
        response = client.request("POST", "/p", {"User-Agent": "sor", "X-A": "b"}, b'{"k": 1}')
        assert client._sock is not None
        nodelay = client._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        client.close()
    assert (response.status, response.body) == (202, b"")
    assert nodelay != 0
    assert server.requests == [
        b"POST /p HTTP/1.1\r\nHost: " + server.address.encode() + b"\r\nUser-Agent: sor\r\n"
        b'X-A: b\r\nContent-Length: 8\r\n\r\n{"k": 1}'
    ]


def test_chunked_body_with_extensions_and_trailers(serve: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Id: 7\r\n\r\n")
        for piece in (b"5;ext=1\r\nhello\r\n", b"1", b"\r\n \r\n", b"0\r\nTrailer: t\r\n\r\n"):
            conn.sendall(piece)  # split mid-line on purpose: the client must reassemble
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = serve(script)
    client = _connection(server)
    try:
        first = client.request("GET", "/a", {})
        second = client.request("GET", "/b", {})
    finally:
        client.close()
    assert (first.status, first.body, first.headers["X-Id"]) == (200, b"hello ", "7")
    assert second.body == b"ok"
    assert server.connections == 1  # the chunked body was read exactly to its end


def test_connection_close_is_honoured(serve: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, index: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n%d" % index)

    server = serve(script)
    client = _connection(server)
    try:
        first = client.request("GET", "/a", {})
        assert first.will_close and not client.connected
        second = client.request("GET", "/b", {})
    finally:
        client.close()
    assert (first.body, second.body) == (b"1", b"2")
    assert server.connections == 2


def test_body_until_close_and_http10(serve: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nall of ")
        conn.sendall(b"it")
        conn.shutdown(socket.SHUT_WR)

    server = serve(script)
    client = _connection(server)
    response = client.request("GET", "/a", {})
    assert (response.body, response.will_close, client.connected) == (b"all of it", True, False)


def test_interim_100_continue_is_skipped(serve: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        conn.sendall(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        )

    server = serve(script)
    client = _connection(server)
    try:
        assert client.request("POST", "/a", {}, b"x").status == 201
    finally:
        client.close()


def test_server_that_hangs_up_is_connection_closed(serve: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, index: int) -> None:
        server.read_request(conn)
        if index == 2:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")

    server = serve(script)
    client = _connection(server)
    with pytest.raises(ConnectionClosed, match="without answering"):
        client.request("GET", "/a", {})
    assert not client.connected
    with pytest.raises(ConnectionClosed, match="after 5 of 10 body bytes"):
        client.request("GET", "/a", {})


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_answers_are_protocol_errors(
    serve: Callable[[Script], RawServer], answer: bytes
) -> None:
    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        conn.sendall(answer)

    server = serve(script)
    client = _connection(server)
    with pytest.raises(ProtocolError):
        client.request("GET", "/a", {})
    assert not client.connected


def test_parse_head_folds_repeated_headers() -> None:
    status, headers, version = parse_head(b"HTTP/1.1 404 Not Found\r\nA: 1\r\nA:  2 \r\nB:")
    assert (status, version) == (404, "HTTP/1.1")
    assert headers == {"A": "1, 2", "B": ""}


def test_split_address() -> None:
    assert split_address("127.0.0.1:9001") == ("127.0.0.1", 9001)
    assert split_address("[::1]:9001") == ("::1", 9001)
    assert split_address("localhost") == ("localhost", 80)
    with pytest.raises(ValueError, match="bad port"):
        split_address("host:port")


def test_encode_request_without_body_has_no_length() -> None:
    assert encode_request("GET", "/n", "h:1", {"User-Agent": "sor"}, None) == (
        b"GET /n HTTP/1.1\r\nHost: h:1\r\nUser-Agent: sor\r\n\r\n"
    )


def test_refused_connection_sent_nothing() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    client = HttpConnection(address)
    with pytest.raises(ConnectionRefusedError):
        client.request("POST", "/x", {}, b"body")
    assert client.request_sent is False


def test_a_keep_alive_dropped_while_idle_is_reopened_before_sending(
    serve: Callable[[Script], RawServer],
) -> None:
    dropped = threading.Event()

    def script(conn: socket.socket, index: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % index)
        if index == 1:
            conn.shutdown(socket.SHUT_RDWR)  # idle timeout, without Connection: close
            dropped.set()

    server = serve(script)
    client = _connection(server)
    try:
        assert client.request("GET", "/a", {}).body == b"1"
        assert dropped.wait(5)
        # The POST must go out after the FIN arrived, or the test would prove nothing (and fail).
        assert client._sock is not None
        assert select.select([client._sock], [], [], 5)[0]
        assert client.request("POST", "/b", {}, b"once").body == b"2"
    finally:
        client.close()
    assert server.connections == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a", b"/b"]  # /b went out once


def test_interrupt_before_the_response_starts(serve: Callable[[Script], RawServer]) -> None:
    release = threading.Event()

    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        release.wait(5)

    server = serve(script)
    client = _connection(server)
    r, w = os.pipe()
    try:
        threading.Timer(0.1, os.write, (w, b"x")).start()
        with pytest.raises(Interrupted):
            client.request("GET", "/next", {}, interrupt_fd=r)
        assert not client.connected  # a request abandoned half-way leaves no reusable socket
    finally:
        release.set()
        client.close()
        os.close(r)
        os.close(w)


def test_a_response_that_started_is_read_whole_despite_the_interrupt(
    serve: Callable[[Script], RawServer],
) -> None:
    r, w = os.pipe()

    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
        os.write(w, b"x")  # the signal lands while the body is on its way
        time.sleep(0.1)
        conn.sendall(b"world")

    server = serve(script)
    client = _connection(server)
    try:
        assert client.request("GET", "/next", {}, interrupt_fd=r).body == b"helloworld"
    finally:
        client.close()
        os.close(r)
        os.close(w)


def _answer_then_hang_up(go_style: bool) -> Script:
    """A server that answers 413 after the head without reading the body, as Go's net/http."""

    def script(conn: socket.socket, _: int) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\n{}"
        )
        if go_style:  # FIN, then a linger without reading: the client's send fails later
            conn.shutdown(socket.SHUT_WR)
            time.sleep(0.3)

    return script


@pytest.mark.parametrize("go_style", [True, False])
def test_an_answer_sent_before_the_body_was_read_is_the_outcome(
    serve: Callable[[Script], RawServer], go_style: bool
) -> None:
    server = serve(_answer_then_hang_up(go_style))
    client = _connection(server)
    try:
        response = client.request("POST", "/big", {}, b"x" * 6_500_000)
    finally:
        client.close()
    assert (response.status, response.body) == (413, b"{}")
    assert not client.connected


def test_a_send_failure_without_an_answer_still_raises(
    serve: Callable[[Script], RawServer],
) -> None:
    def script(conn: socket.socket, _: int) -> None:
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        conn.close()  # a reset with no answer

    server = serve(script)
    client = _connection(server)
    with pytest.raises(OSError):
        client.request("POST", "/big", {}, b"x" * 6_500_000)
    assert client.request_sent is True


@pytest.mark.parametrize("length", ["+2", "1 0", "1_0", "\u00b2", "0x2", "-1", "2, 2", ""])
def test_a_content_length_that_is_not_ascii_digits_is_a_protocol_error(
    serve: Callable[[Script], RawServer], length: str
) -> None:
    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nok".encode("latin-1")
        conn.sendall(head)

    server = serve(script)
    client = _connection(server)
    with pytest.raises(ProtocolError, match="Content-Length"):
        client.request("GET", "/n", {})


@pytest.mark.parametrize("size", [b"-1", b"+2", b"0x2", b"1_0", b"\xc2\xb2", b"", b"g"])
def test_a_chunk_size_that_is_not_hex_digits_is_a_protocol_error(
    serve: Callable[[Script], RawServer], size: bytes
) -> None:
    def script(conn: socket.socket, _: int) -> None:
        server.read_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nok\r\n0\r\n\r\n"
        )

    server = serve(script)
    client = _connection(server)
    with pytest.raises(ProtocolError, match="chunk size"):
        client.request("GET", "/n", {})


@pytest.mark.parametrize("status", ["2OO", "+20", "\u00b200", "2000", "20"])
def test_a_status_that_is_not_three_ascii_digits_is_a_protocol_error(status: str) -> None:
    with pytest.raises(ProtocolError):
        parse_head(f"HTTP/1.1 {status} OK".encode("latin-1"))


def test_bytes_after_a_whole_response_are_not_taken_as_the_next_one(
    serve: Callable[[Script], RawServer],
) -> None:
    def script(conn: socket.socket, index: int) -> None:
        server.read_request(conn)
        extra = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale" if index == 1 else b""
        # One write: the stray response arrives with the real one.
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % index + extra)
        with contextlib.suppress(OSError):
            server.read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwrong")

    server = serve(script)
    client = _connection(server)
    try:
        assert client.request("GET", "/a", {}).body == b"1"
        assert not client.connected
        assert client.request("GET", "/b", {}).body == b"2"
    finally:
        client.close()
    assert server.connections == 2
