"""A minimal HTTP/1.1 client connection: one keep-alive TCP socket, one request at a time.

Written for the Runtime API hot path, where ``http.client`` costs more than the rest of sor's own
per-invocation work (docs/performance.md): it parses headers through ``email.feedparser`` and
sends a POST's head and body in two writes. This one sends each request as one buffer with
TCP_NODELAY set, and parses the status line and headers itself. Bodies: Content-Length, chunked,
or until the server closes. ``Connection: close`` (and HTTP/1.0 without keep-alive) is honoured.
``stream`` sends a body in chunked encoding as its chunks come, then trailers (Lambda's response
streaming).
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Iterable, Mapping
from socket import SOCK_STREAM

MAX_HEAD = 64 * 1024  # status line and headers; Lambda's are well under 2 kB
_READ = 64 * 1024  # below malloc's mmap threshold: a bigger buffer costs an mmap per recv


_HEX_DIGITS = b"0123456789abcdefABCDEF"
_HEAD_TOO_LONG = f"response headers longer than {MAX_HEAD} bytes"
_NO_ANSWER = "the server closed the connection without answering"


def _is_decimal(text: str) -> bool:
    """Only ASCII digits: ``int()`` would also take "+5", " 5", "1_0" and other scripts' digits."""
    return text.isascii() and text.isdigit()


def _is_status(text: str) -> bool:
    return len(text) == 3 and _is_decimal(text)


class ConnectionClosed(ConnectionError):
    """The server closed the connection before a whole response arrived."""


class ProtocolError(ValueError):
    """The server answered something that is not HTTP/1.x."""


class Interrupted(Exception):
    """The interrupt descriptor became readable before any byte of the response arrived."""


class Response:
    """Status, headers (names as sent; ``lower``: by lower-case name) and body of one response."""

    __slots__ = ("body", "headers", "lower", "status", "will_close")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        will_close: bool,
        lower: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.will_close = will_close
        self.lower = lower if lower is not None else {k.lower(): v for k, v in headers.items()}


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too; port 80 when absent) as a (host, port) pair."""
    host, sep, port = address.rpartition(":")
    if not sep or host.endswith(":") or (host.startswith("[") != host.endswith("]")):
        host, port = address, "80"
    if not _is_decimal(port):
        raise ValueError(f"bad port in {address!r}")
    return host.strip("[]"), int(port)


def encode_request(
    method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """The whole request as one buffer, ready for a single ``sendall``."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head + body if body else head


def encode_trailers(trailers: Mapping[str, str]) -> bytes:
    """The last chunk of a chunked body: size 0, the trailer fields, the empty line."""
    lines = [b"0"]
    for name, value in trailers.items():
        # A field cannot hold a line break: one would end it and forge the next.
        clean = value.replace("\r", " ").replace("\n", " ")
        lines.append(f"{name}: {clean}".encode("latin-1", "replace"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


class HttpConnection:
    """One persistent connection to ``host:port``; opened on the first request."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.host, self.port = split_address(address)
        self._sock: socket.socket | None = None
        self._poll: select.poll | None = None
        # The socket and the last interrupt descriptor, registered once: `next` waits on both
        # at every invocation.
        self._waiter: select.poll | None = None
        self._waiter_fd: int | None = None
        self._buf = bytearray()  # received, not yet consumed; bytearray: cheap appends
        self._interrupt: int | None = None
        self._answering = False  # a byte of the current response has arrived
        # False until a byte of the current request left: only then may a POST be retried.
        self.request_sent = False

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        interrupt_fd: int | None = None,
    ) -> Response:
        """Send one request and read its whole response.

        Raises OSError (ConnectionClosed when the server hung up) or ProtocolError; either way the
        connection is closed, and the next request opens a new one. With ``interrupt_fd``, raises
        Interrupted when that descriptor becomes readable before the response starts; once a byte
        of the response arrived, the response is read whole. ``request_sent`` tells afterwards
        whether any byte of the request was sent.
        """
        return self._exchange(
            method,
            lambda: self._send(encode_request(method, target, self.address, headers, body)),
            interrupt_fd,
        )

    def send_encoded(
        self, method: str, data: bytes, *, interrupt_fd: int | None = None
    ) -> Response:
        """`request` for a request already encoded (`encode_request`, whose Host is this
        connection's address): the Runtime API client builds its constant ones once."""
        return self._exchange(method, data, interrupt_fd)

    def stream(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        chunks: Iterable[bytes],
        trailers: Callable[[], Mapping[str, str]],
    ) -> Response:
        """Send one request whose body is ``chunks`` in chunked encoding, each chunk sent as
        soon as it is pulled, then the last chunk with the trailers ``trailers()`` gives once
        ``chunks`` ran out; read the whole response.

        The head goes before the first chunk is pulled. Errors as ``request``; an exception
        from ``chunks`` or ``trailers`` closes the connection (a request cut short cannot be
        finished) and propagates.
        """
        head = {**headers, "Transfer-Encoding": "chunked"}

        def send() -> None:
            self._send(encode_request(method, target, self.address, head, None))
            assert self._sock is not None
            for chunk in chunks:
                if chunk:  # an empty chunk would end the body
                    self._send_chunk(chunk)
            self._sock.sendall(encode_trailers(trailers()))

        return self._exchange(method, send, None)

    def _send_chunk(self, chunk: bytes) -> None:
        assert self._sock is not None
        size = b"%x\r\n" % len(chunk)
        if len(chunk) < _READ:  # small: one write (one segment, TCP_NODELAY is on)
            self._sock.sendall(size + chunk + b"\r\n")
        else:  # big: no copy of it
            self._sock.sendall(size)
            self._sock.sendall(chunk)
            self._sock.sendall(b"\r\n")

    def _exchange(
        self, method: str, send: Callable[[], None] | bytes, interrupt_fd: int | None
    ) -> Response:
        """Connect if needed, ``send`` the request (or send those bytes), read its response (see
        ``request``)."""
        self.request_sent = False
        self._answering = False
        self._interrupt = interrupt_fd
        try:
            if self._sock is not None and self._stale():
                self.close()  # dropped while idle: reconnect before sending anything
            if self._sock is None:
                self._connect()
            try:
                if isinstance(send, bytes):
                    self._send(send)
                else:
                    send()
            except OSError:
                # A server may answer (413) and hang up before reading the whole body: the
                # answer that already arrived is the outcome, as curl reads it too.
                response = self._early_response(method)
                if response is None:
                    raise
            else:
                response = self._read_response(method)
        except BaseException:
            self.close()  # a half-used connection cannot be reused
            raise
        finally:
            self._interrupt = None
        if response.will_close or self._buf:
            self.close()  # bytes after a whole response answer nothing asked: never reuse them
        return response

    def _early_response(self, method: str) -> Response | None:
        """The response already received when sending failed; None when there is none."""
        if not self.request_sent or self._sock is None:
            return None
        assert self._poll is not None
        self._interrupt = None
        try:
            if not self._buf and not self._poll.poll(0):
                return None
            response = self._read_response(method)
        except (OSError, ProtocolError):
            return None
        response.will_close = True  # part of the request was never sent
        return response

    def _stale(self) -> bool:
        """True when the idle connection was closed by the server (or sent unasked bytes)."""
        assert self._poll is not None
        return bool(self._poll.poll(0))

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        # One send first: failing there means nothing left (a POST may then be retried).
        sent = self._sock.send(data)
        self.request_sent = True
        if sent < len(data):
            self._sock.sendall(memoryview(data)[sent:])

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._poll = self._waiter = None
        self._buf = bytearray()
        if sock is not None:
            sock.close()

    def _connect(self) -> None:
        # An ASCII host goes as bytes: a str would load the idna codec (~1 ms of cold start).
        host: str | bytes = self.host.encode("ascii") if self.host.isascii() else self.host
        last: OSError = OSError(f"{self.address} resolves to no address")
        for family, kind, proto, _, where in socket.getaddrinfo(host, self.port, 0, SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                sock.connect(where)
                break
            except OSError as e:
                sock.close()
                last = e
        else:
            raise last
        # Every request is one write and waits for its answer: Nagle would only add delay.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._buf = bytearray()

    def _read_response(self, method: str) -> Response:
        while True:
            head = self._read_head()
            status, headers, lower, version = _parse_head(head)
            if not 100 <= status < 200 or status == 101:
                break  # 1xx interim answers (100 Continue) are skipped
        conn = lower.get("connection", "").lower()
        will_close = "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn)
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in lower.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in lower:
            text = lower["content-length"]
            if not _is_decimal(text):
                raise ProtocolError(f"bad Content-Length {text[:20]!r}")
            body = self._read_exactly(int(text))
        else:
            body = self._read_to_close()
            will_close = True
        return Response(status, headers, body, will_close, lower)

    def _fill(self) -> bool:
        assert self._sock is not None
        if self._interrupt is not None and not self._answering:
            self._wait_or_interrupt()
        data = self._sock.recv(_READ)
        if data:
            self._answering = True
            self._buf += data
        return bool(data)

    def _wait_or_interrupt(self) -> None:
        assert self._sock is not None and self._interrupt is not None
        waiter = self._waiter
        if waiter is None or self._waiter_fd != self._interrupt:
            waiter = self._waiter = select.poll()
            waiter.register(self._sock, select.POLLIN)
            waiter.register(self._interrupt, select.POLLIN)
            self._waiter_fd = self._interrupt
        ready = [fd for fd, _ in waiter.poll()]
        if self._interrupt in ready and self._sock.fileno() not in ready:
            raise Interrupted

    def _read_head(self) -> bytearray:
        return self._read_until(b"\r\n\r\n", _HEAD_TOO_LONG, _NO_ANSWER)

    def _read_line(self) -> bytes:
        return bytes(
            self._read_until(
                b"\r\n",
                "chunk header line too long",
                "the server closed the connection inside a chunked body",
            )
        )

    def _read_until(self, end_mark: bytes, too_long: str, closed: str) -> bytearray:
        """The bytes before ``end_mark`` (which is consumed), at most MAX_HEAD of them."""
        while True:
            end = self._buf.find(end_mark)
            if end >= 0:
                found = self._buf[:end]
                del self._buf[: end + len(end_mark)]
                return found
            if len(self._buf) > MAX_HEAD:
                raise ProtocolError(too_long)
            if not self._fill():
                raise ConnectionClosed(closed)

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise ConnectionClosed(
                    f"the server closed the connection after {len(self._buf)} of {n} body bytes"
                )
        if len(self._buf) == n:  # the usual body: all that arrived, taken in one copy
            data = bytes(self._buf)
            self._buf.clear()
            return data
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip(b" \t")
            if not size_text or size_text.strip(_HEX_DIGITS):
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise ProtocolError("a chunk does not end with CRLF")

    def _read_to_close(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self._buf)
        self._buf = bytearray()
        return data


def parse_head(head: bytes) -> tuple[int, dict[str, str], str]:
    """Status, headers and HTTP version of a response head (without its final empty line)."""
    status, headers, _, version = _parse_head(head)
    return status, headers, version


def _parse_head(head: bytes | bytearray) -> tuple[int, dict[str, str], dict[str, str], str]:
    """`parse_head`, and the headers by lower-case name too (one pass: every invocation)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _is_status(parts[1]):
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    lower: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"malformed header line: {line[:80]!r}")
        value = value.strip()
        # Repeated headers fold into one comma-separated value, as RFC 9110 allows.
        if name in headers:
            value = f"{headers[name]}, {value}"
        headers[name] = lower[name.lower()] = value
    if len(lower) < len(headers):  # names differing only in case: the last one wins, as ever
        lower = {k.lower(): v for k, v in headers.items()}
    return int(parts[1]), headers, lower, parts[0]
