"""A minimal, real Lambda Runtime API server for tests (http.server on 127.0.0.1, keep-alive).

It queues invocations, hands them to whatever runtime polls `invocation/next` (sor, awslambdaric),
and records exactly what the runtime posted back: body and headers, raw. It also serves the
Extensions API (`/2020-01-01/extension/...`) as Lambda does for extensions registered from the
runtime process (internal ones): `SHUTDOWN` refused, registration closed after the runtime's
first `invocation/next`, `event/next` held open.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
EXTENSION = "/2020-01-01/extension"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"


@dataclass
class Answer:
    """What the runtime posted for one invocation (or for init)."""

    kind: str  # "response", "error" or "init_error"
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Pending:
    request_id: str
    event: bytes
    headers: dict[str, str]
    done: threading.Event = field(default_factory=threading.Event)
    answer: Answer | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _refuse(self, error_type: str, message: str) -> None:
        self._send(403, json.dumps({"errorType": error_type, "errorMessage": message}).encode())

    def _register(self) -> None:
        """RIE's rules for an internal extension (rapi/handler/agentregister.go)."""
        body = self._body()
        name = self.headers.get("Lambda-Extension-Name", "")
        server = self.server
        with server.lock:
            if not name:
                self._refuse("Extension.InvalidExtensionName", "Empty extension name")
                return
            if server.first_next_at is not None:
                self._refuse(
                    "Extension.RegistrationClosed", "Extension registration closed already"
                )
                return
            if name in server.extensions.values():
                self._refuse(
                    "Extension.InvalidExtensionState", "Extension with this name already registered"
                )
                return
            try:
                events = json.loads(body).get("events", [])
            except (ValueError, AttributeError):
                self._send(403, b'{"errorType":"InvalidRequestFormat","errorMessage":"bad body"}')
                return
            if "SHUTDOWN" in events:  # core/internalagent.go: ValidateInternalAgentEvent
                self._refuse(
                    "Extension.InvalidEventType",
                    "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension",
                )
                return
            identifier = str(uuid.uuid4())
            server.extensions[identifier] = name
            server.registrations.append((name, events, time.monotonic()))
        self._send(
            200,
            json.dumps(
                {"functionName": "f", "functionVersion": "$LATEST", "handler": "h"}
            ).encode(),
            {"Lambda-Extension-Identifier": identifier, "Content-Type": "application/json"},
        )

    def _extension_next(self) -> None:
        """Held open: an extension with no events is never sent one (until the server closes)."""
        identifier = self.headers.get("Lambda-Extension-Identifier", "")
        if identifier not in self.server.extensions:
            self._refuse("Extension.UnknownExtensionIdentifier", f"Unknown extension {identifier}")
            return
        self.server.waiting.append((identifier, time.monotonic()))
        while not self.server.closing:
            time.sleep(0.05)
        self.close_connection = True

    def do_GET(self) -> None:
        if self.path == f"{EXTENSION}/event/next":
            self._extension_next()
            return
        if self.path != f"{PREFIX}/invocation/next":
            self._send(404, b"{}")
            return
        with self.server.lock:
            if self.server.first_next_at is None:
                self.server.first_next_at = time.monotonic()
        while True:
            try:
                pending = self.server.queue.get(timeout=0.1)
                break
            except queue.Empty:
                if self.server.closing:
                    self.close_connection = True
                    return
        self.server.delivered[pending.request_id] = pending
        self._send(200, pending.event, pending.headers)

    def do_POST(self) -> None:
        if self.path == f"{EXTENSION}/register":
            self._register()
            return
        body = self._body()
        headers = dict(self.headers.items())
        if self.path == f"{PREFIX}/init/error":
            self.server.init_errors.append(Answer("init_error", body, headers))
            self.server.init_failed.set()
            self._send(202, b'{"status":"OK"}')
            return
        parts = self.path[len(PREFIX) :].split("/")
        if len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
            pending = self.server.delivered.pop(parts[2], None)
            if pending is None:
                self._send(400, b'{"errorType":"InvalidRequestID"}')
                return
            pending.answer = Answer(parts[3], body, headers)
            pending.done.set()
            self._send(202, b'{"status":"OK"}')
            return
        self._send(404, b"{}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed in the middle of a long poll resets its connection: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def __init__(self, handler: type[_Handler] = _Handler) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.queue: queue.Queue[_Pending] = queue.Queue()
        self.delivered: dict[str, _Pending] = {}
        self.init_errors: list[Answer] = []
        self.init_failed = threading.Event()
        self.closing = False
        self.lock = threading.Lock()
        self.first_next_at: float | None = None  # the runtime's first invocation/next
        self.extensions: dict[str, str] = {}  # identifier -> name
        self.registrations: list[tuple[str, list[str], float]] = []  # name, events, when
        self.waiting: list[tuple[str, float]] = []  # extension event/next calls held open


class RuntimeApiServer:
    """Start with ``RuntimeApiServer()``; ``address`` is what AWS_LAMBDA_RUNTIME_API takes."""

    handler: type[_Handler] = _Handler  # a subclass may read answers its own way (stream_api)

    def __init__(self) -> None:
        self._server = _Server(self.handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def first_next_at(self) -> float | None:
        """When (time.monotonic()) the runtime first asked for an invocation."""
        return self._server.first_next_at

    @property
    def registrations(self) -> list[tuple[str, list[str], float]]:
        """Accepted extension registrations: (name, events, time.monotonic())."""
        return self._server.registrations

    @property
    def waiting(self) -> list[tuple[str, float]]:
        """Extension `event/next` calls received (identifier, time.monotonic())."""
        return self._server.waiting

    @property
    def init_errors(self) -> list[Answer]:
        return self._server.init_errors

    def wait_init_error(self, wait: float = 10.0) -> Answer:
        assert self._server.init_failed.wait(wait), "the runtime posted no init error"
        return self._server.init_errors[0]

    def submit(
        self,
        event: bytes | Any,
        *,
        timeout: float = 5.0,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Pending:
        """Queue one invocation; ``wait_answer`` collects its answer."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        request_id = request_id or str(uuid.uuid4())
        deadline_ms = int((time.time() + timeout) * 1000)
        sent = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
            "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            "Content-Type": "application/json",
            **(headers or {}),
        }
        pending = _Pending(request_id, body, sent)
        self._server.queue.put(pending)
        return pending

    @staticmethod
    def wait_answer(pending: _Pending, wait: float = 15.0) -> Answer:
        assert pending.done.wait(wait), f"no answer to {pending.request_id} within {wait} s"
        assert pending.answer is not None
        return pending.answer

    def invoke(self, event: bytes | Any, *, wait: float = 15.0, **options: Any) -> Answer:
        """Queue one invocation and wait (at most ``wait`` s) for the runtime's answer."""
        return self.wait_answer(self.submit(event, **options), wait)

    def close(self) -> None:
        self._server.closing = True
        self._server.shutdown()
        self._server.server_close()


def read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    """One whole request read off a raw connection: (head, Content-Length body).

    For the scripted raw-socket servers of the tests, which must control every byte they answer.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client went away inside the body")
        body += chunk
    return head, body
