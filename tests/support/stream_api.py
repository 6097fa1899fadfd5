"""The test Runtime API server, recording streamed answers exactly as they came on the wire.

`StreamApiServer` is `RuntimeApiServer` (same `submit`, `invoke`, `wait_answer`, `next`
served the same way) whose handler reads a chunked answer itself: for every chunk, its bytes
and the `time.monotonic()` at which its last byte arrived; then the trailers. A streamed answer
(`Lambda-Runtime-Function-Response-Mode: streaming`) is a `StreamedAnswer`; any other is the
plain `Answer`. Repeated header fields are folded into one value (``header_lines`` keeps them
as sent). Framing that is not valid chunked encoding is recorded in `problems` (the test
asserts it empty), never silently repaired.

With ``keep=N`` only the first N body bytes are kept (sizes, times and a SHA-256 of the whole
body always are): a 200 MiB stream need not be held by the test.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from support.runtime_api_server import PREFIX, Answer, RuntimeApiServer, _Handler

STREAMING = "streaming"
MODE = "Lambda-Runtime-Function-Response-Mode"
ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY = "Lambda-Runtime-Function-Error-Body"
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
PRELUDE_END = b"\0" * 8
_MAX_LINE = 64 * 1024


@dataclass
class Chunk:
    """One chunk of the chunked encoding as it arrived."""

    size: int
    at: float  # time.monotonic() when its last byte was read
    data: bytes  # b"" past the server's `keep` budget
    extension: bytes = b""  # whatever followed ';' on the size line


@dataclass
class StreamedAnswer(Answer):
    """A streaming POST: headers, each chunk with its arrival time, the trailers."""

    header_lines: list[tuple[str, str]] = field(default_factory=list)  # as sent, in order
    started_at: float = 0.0  # the request head arrived
    ended_at: float | None = None  # the terminal chunk and trailers arrived
    chunks: list[Chunk] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    size: int = 0  # body bytes received
    sha256: str = ""  # of the whole body, kept or not
    problems: list[str] = field(default_factory=list)  # framing errors, in order
    ended: threading.Event = field(default_factory=threading.Event)

    def header(self, name: str) -> str | None:
        """A request header, by case-insensitive name."""
        return _lookup(self.headers, name)

    def trailer(self, name: str) -> str | None:
        return _lookup(self.trailers, name)

    @property
    def error_type(self) -> str | None:
        return self.trailer(ERROR_TYPE)

    def error(self) -> Any:
        """The ERROR of the error trailers, base64-decoded and parsed (None when there is none)."""
        body = self.trailer(ERROR_BODY)
        return None if body is None else json.loads(base64.b64decode(body, validate=True))

    def prelude(self) -> tuple[Any, bytes]:
        """An HTTP integration stream split: (the prelude's JSON, the body after the 8 NULs)."""
        head, sep, rest = self.body.partition(PRELUDE_END)
        assert sep, "no 8-NUL separator in the stream"
        return json.loads(head), rest


def _lookup(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


class _StreamHandler(_Handler):
    server: Any  # the base server, plus `streams` and `keep` (set by StreamApiServer)

    def handle(self) -> None:
        # A test's client may hang up at any point (mid-stream, before the 202): that is a
        # finding recorded in `problems`, not a server failure to print.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def do_POST(self) -> None:
        if (self.headers.get(MODE) or "").lower() != STREAMING:
            super().do_POST()
            return
        parts = self.path[len(PREFIX) :].split("/")
        request_id = parts[2] if len(parts) == 4 else ""
        lines = list(self.headers.items())
        folded: dict[str, str] = {}  # a repeated field (Node sends one per array item) folded
        for name, value in lines:
            folded[name] = f"{folded[name]}, {value}" if name in folded else value
        answer = StreamedAnswer(
            "response" if parts[-1] == "response" else parts[-1],
            b"",
            folded,
            header_lines=lines,
            started_at=time.monotonic(),
        )
        self.server.streams[request_id] = answer
        self._read_stream(answer)
        answer.ended.set()
        pending = self.server.delivered.pop(request_id, None)
        if not self.path.startswith(PREFIX) or pending is None:
            self._send(400, b'{"errorType":"InvalidRequestID"}')
            return
        pending.answer = answer
        pending.done.set()
        if answer.problems:  # the framing is lost or the client went away: no answer
            self.close_connection = True
            return
        self._send(202, b'{"status":"OK"}')

    def _line(self) -> bytes | None:
        line = self.rfile.readline(_MAX_LINE)
        if not line.endswith(b"\r\n"):
            return None
        return line[:-2]

    def _read_stream(self, answer: StreamedAnswer) -> None:
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            answer.problems.append("a streaming answer without Transfer-Encoding: chunked")
            answer.body = self._body()
            answer.size = len(answer.body)
            answer.sha256 = hashlib.sha256(answer.body).hexdigest()
            return
        digest = hashlib.sha256()
        kept = bytearray()
        keep: int | None = self.server.keep
        while True:
            line = self._line()
            if line is None:
                answer.problems.append("connection closed or CRLF missing on a chunk size line")
                break
            size_text, _, extension = line.partition(b";")
            try:
                size = int(size_text.strip(), 16)
            except ValueError:
                answer.problems.append(f"bad chunk size line {line[:40]!r}")
                break
            if size == 0:
                self._read_trailers(answer)
                break
            data = self.rfile.read(size)
            at = time.monotonic()
            if len(data) < size:
                answer.problems.append(f"connection closed after {len(data)} of {size} bytes")
                break
            if self.rfile.read(2) != b"\r\n":
                answer.problems.append("a chunk's data is not followed by CRLF")
                break
            digest.update(data)
            answer.size += size
            room = size if keep is None else max(0, min(size, keep - len(kept)))
            kept += data[:room]
            answer.chunks.append(Chunk(size, at, data if room == size else data[:room], extension))
        answer.ended_at = time.monotonic()
        answer.body = bytes(kept)
        answer.sha256 = digest.hexdigest()

    def _read_trailers(self, answer: StreamedAnswer) -> None:
        while True:
            line = self._line()
            if line is None:
                answer.problems.append("connection closed inside the trailers")
                return
            if not line:
                return
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or name != name.strip() or not name:
                answer.problems.append(f"malformed trailer line {line[:60]!r}")
                continue
            answer.trailers[name] = value.strip()


class StreamApiServer(RuntimeApiServer):
    """A RuntimeApiServer that records streamed answers chunk by chunk (see the module)."""

    handler = _StreamHandler

    def __init__(self, *, keep: int | None = None) -> None:
        super().__init__()
        self._server.streams = {}  # request id -> StreamedAnswer, filled as it arrives
        self._server.keep = keep

    def live(self, request_id: str, wait: float = 15.0) -> StreamedAnswer:
        """The stream being received for ``request_id`` (waits for its head, at most ``wait``)."""
        end = time.monotonic() + wait
        while request_id not in self._server.streams:
            assert time.monotonic() < end, f"no stream for {request_id} within {wait} s"
            time.sleep(0.005)
        stream: StreamedAnswer = self._server.streams[request_id]
        return stream

    def wait_stream(self, pending: Any, wait: float = 15.0) -> StreamedAnswer:
        """The answer to ``pending``, which must be a streamed one."""
        answer = self.wait_answer(pending, wait)
        assert isinstance(answer, StreamedAnswer), (
            f"not streamed: {answer.kind} {answer.headers} {answer.body[:200]!r}"
        )
        return answer
