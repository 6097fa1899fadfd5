"""sor's embedded emulator: the Lambda Runtime API for one bootstrap, and RIE's invoke endpoint.

``Emulator`` serves ``/2018-06-01/runtime/...`` on 127.0.0.1 (an ephemeral port) to the bootstrap
it starts in ``DIR`` with the Lambda environment, and runs invocations through it one at a time
(``sor.sandbox``). ``invoke_server`` puts RIE's ``POST /2015-03-31/functions/function/invocations``
in front of it. Both servers are ``http.server`` with HTTP/1.1 keep-alive; this module is the only
place sor serves HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import select
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sor.errors import UsageError
from sor.invoke_result import InvokeResult, request_too_large_answer
from sor.logs import Log
from sor.sandbox import MAX_PAYLOAD, Sandbox

__all__ = ["MAX_PAYLOAD", "Emulator", "InvokeResult", "invoke_server", "lambda_environment"]

_PREFIX = "/2018-06-01/runtime"
_INVOCATION = re.compile(rf"^{_PREFIX}/invocation/([^/]+)/(response|error)$")
_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_CHUNK = 1 << 16
_ACCOUNT = "012345678912"  # RIE's account id in the invoked function ARN


def lambda_environment(
    base: Mapping[str, str], task_root: str, runtime_api: str, timeout: float, handler: str | None
) -> dict[str, str]:
    """The bootstrap's environment: ``base`` (winning over the defaults) and Lambda's variables."""
    env = dict(base)
    name = env.get("AWS_LAMBDA_FUNCTION_NAME") or Path(task_root).name or "test_function"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[$LATEST]{uuid.uuid4().hex}"
    defaults = {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    if handler:
        defaults["_HANDLER"] = handler
    for key, value in defaults.items():
        if not env.get(key):
            env[key] = value
    env["AWS_LAMBDA_RUNTIME_API"] = runtime_api
    env["LAMBDA_TASK_ROOT"] = task_root
    env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = f"{timeout:g}"
    return env


class _Handler(BaseHTTPRequestHandler):
    """Shared plumbing: keep-alive, bounded body reads, whole responses."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "sor"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would drown the function's own logs

    def read_body(self, limit: int) -> bytes | int:
        """The request body, or its size when it is over ``limit`` (it is read and dropped)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        if length <= limit:
            return self.rfile.read(length)
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, _CHUNK))
            if not chunk:
                break
            left -= len(chunk)
        return length

    def _read_chunked(self, limit: int) -> bytes | int:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            n = int(line.split(b";")[0].strip() or b"0", 16)
            if n == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            data = self.rfile.read(n)
            self.rfile.readline(16)
            size += len(data)
            if size <= limit:
                parts.append(data)
        return b"".join(parts) if size <= limit else size

    def answer(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> bool:
        """Send a whole response; False when the connection broke."""
        try:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True
            return False
        return True

    def answer_json(self, status: int, value: object) -> None:
        self.answer(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def not_found(self) -> None:
        self.answer_json(404, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})


class _RuntimeApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sandbox: Sandbox, arn: str) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeApiHandler)
        self.sandbox = sandbox
        self.arn = arn


class _RuntimeApiHandler(_Handler):
    """The Lambda Runtime API, as the bootstrap sees it."""

    server: _RuntimeApiServer

    def do_GET(self) -> None:
        if self.path != f"{_PREFIX}/invocation/next":
            self.not_found()
            return
        inv = self.server.sandbox.next_invocation(self._peer_gone)
        if inv is None:
            self.close_connection = True  # stopping, restarted, or a caller that has gone
            return
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.server.arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        }
        if inv.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = inv.client_context
        if inv.cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = inv.cognito_identity
        if not self.answer(200, inv.payload, headers):
            self.server.sandbox.return_invocation(inv)

    def do_POST(self) -> None:
        sandbox = self.server.sandbox
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type", "")
        match = _INVOCATION.match(self.path)
        if match is None and self.path != f"{_PREFIX}/init/error":
            self.read_body(0)
            self.not_found()
            return
        body = self.read_body(MAX_PAYLOAD)
        if match is None:
            outcome = sandbox.post_init_error(body if isinstance(body, bytes) else b"", error_type)
        elif isinstance(body, int):
            outcome = sandbox.response_too_large(match.group(1), body)
        elif match.group(2) == "response":
            outcome = sandbox.post_response(match.group(1), body)
        else:
            outcome = sandbox.post_error(match.group(1), body, error_type)
        status, kind, message = outcome
        if status == 202:
            self.answer_json(202, {"status": "OK"})
        else:
            self.answer_json(status, {"errorMessage": message, "errorType": kind})

    def _peer_gone(self) -> bool:
        """True when the bootstrap has closed this connection (e.g. it was killed)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


class Emulator:
    """The embedded Lambda emulator, usable in-process: ``start``, ``invoke``..., ``stop``."""

    def __init__(
        self,
        directory: str | Path,
        timeout: float = 3.0,
        env: Mapping[str, str] | None = None,
        bootstrap: Sequence[str] | None = None,
        log: Log | None = None,
        *,
        handler: str | None = None,
    ) -> None:
        self.directory = str(Path(directory).resolve())
        self.timeout = timeout
        self.base_env = dict(env or {})
        self.bootstrap = list(bootstrap or [sys.executable, "-m", "sor", "run"])
        self.log = log if log is not None else Log()
        self.handler = handler
        self.env: dict[str, str] = {}
        self._sandbox: Sandbox | None = None
        self._server: _RuntimeApiServer | None = None

    @property
    def runtime_api(self) -> str:
        """host:port of the Runtime API (once started)."""
        assert self._server is not None, "the emulator is not started"
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        """Serve the Runtime API and start the bootstrap; UsageError when it cannot start."""
        if not Path(self.directory).is_dir():
            raise UsageError(f"{self.directory} is not a directory")
        sandbox = Sandbox(
            self.bootstrap, cwd=self.directory, env={}, timeout=self.timeout, log=self.log
        )
        self._server = _RuntimeApiServer(sandbox, "")
        self.env = lambda_environment(
            self.base_env, self.directory, self.runtime_api, self.timeout, self.handler
        )
        sandbox.env = self.env
        region, name = self.env["AWS_REGION"], self.env["AWS_LAMBDA_FUNCTION_NAME"]
        self._server.arn = f"arn:aws:lambda:{region}:{_ACCOUNT}:function:{name}"
        threading.Thread(target=self._server.serve_forever, daemon=True, name="sor-rapi").start()
        self._sandbox = sandbox
        try:
            sandbox.start()
        except OSError as exc:
            self.stop()
            raise UsageError(
                f"cannot start the bootstrap {shlex.join(self.bootstrap)}: {exc}"
            ) from None

    def invoke(self, payload: bytes, client_context: str | None = None) -> InvokeResult:
        """One invocation; ``client_context`` is the JSON text the runtime gets as-is."""
        assert self._sandbox is not None, "the emulator is not started"
        if len(payload) > MAX_PAYLOAD:
            return request_too_large_answer(MAX_PAYLOAD)
        return self._sandbox.invoke(payload, client_context)

    def bootstrap_pid(self) -> int | None:
        """The running bootstrap's process id (it leads its own process group)."""
        return self._sandbox.pid() if self._sandbox is not None else None

    def stop(self) -> None:
        """Stop the bootstrap (SIGTERM, then SIGKILL to all it started) and the server."""
        if self._sandbox is not None:
            self._sandbox.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _InvokeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: Emulator, host: str, port: int) -> None:
        super().__init__((host, port), _InvokeHandler)
        self.emulator = emulator


class _InvokeHandler(_Handler):
    """RIE's invoke endpoint."""

    server: _InvokeServer

    def do_POST(self) -> None:
        body = self.read_body(MAX_PAYLOAD)
        if _INVOKE.match(self.path.split("?", 1)[0]) is None:
            self.not_found()
            return
        if isinstance(body, int):
            result = request_too_large_answer(MAX_PAYLOAD)
        else:
            result = self.server.emulator.invoke(body, _client_context(self.headers))
        self.answer(result.status, result.body, result.headers)

    def do_GET(self) -> None:
        self.not_found()


def _client_context(headers: Message) -> str | None:
    """X-Amz-Client-Context is base64 JSON in the Invoke API; the runtime gets the JSON."""
    value = headers.get("X-Amz-Client-Context")
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return value


def invoke_server(emulator: Emulator, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) for RIE's invoke endpoint; OSError when it cannot bind."""
    return _InvokeServer(emulator, host, port)
