"""The Lambda Runtime API as the emulator's bootstrap sees it (``/2018-06-01/runtime/...`` and the
Extensions API), over ``sor.emulator.sandbox``. A response posted in streaming mode
(``Lambda-Runtime-Function-Response-Mode: streaming``, chunked, with the error trailers) is passed
on to its caller piece by piece as it arrives (``sor.emulator.stream``), within its deadline.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import select
import socket
import time

from sor.emulator import answers
from sor.emulator.answers import service_error_answer
from sor.emulator.extensions import MAX_REGISTER_BODY
from sor.emulator.extensions import PREFIX as EXTENSION_PREFIX
from sor.emulator.sandbox import Emulated, Sandbox
from sor.emulator.stream import ChunkStream, StreamError
from sor.http.chunked import BadChunk, ChunkedReader
from sor.http.server import RequestHandler, Server
from sor.limits import MAX_PAYLOAD, MAX_STREAM

_PREFIX = "/2018-06-01/runtime"
_INVOCATION = re.compile(rf"^{_PREFIX}/invocation/([^/]+)/(response|error)$")
_MODE = "Lambda-Runtime-Function-Response-Mode"
ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY = "Lambda-Runtime-Function-Error-Body"


class RuntimeApiServer(Server):
    def __init__(self, sandbox: Sandbox, arn: str) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeApiHandler)
        self.sandbox = sandbox
        self.arn = arn


class _RuntimeApiHandler(RequestHandler):
    """The Lambda Runtime API, as the bootstrap sees it."""

    server: RuntimeApiServer

    def do_GET(self) -> None:
        if self.path == f"{EXTENSION_PREFIX}/event/next":
            self._extension_next()
            return
        if self.path != f"{_PREFIX}/invocation/next":
            self.not_found()
            return
        sandbox = self.server.sandbox
        inv = sandbox.next_invocation(self._peer_gone)
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
        if inv.tenant_id is not None:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = inv.tenant_id
        try:
            sent = self.answer(200, inv.payload, headers)
        except Exception as exc:
            # Never leave the invocation delivered yet unsent: its caller would wait for nothing.
            message = f"RequestId: {inv.request_id} could not be sent to the runtime: {exc}"
            sandbox.log.error(message, inv.request_id)
            sandbox.fail_invocation(inv, service_error_answer(message))
            return
        if not sent:
            sandbox.return_invocation(inv)

    def _register(self) -> None:
        body = self.read_body(MAX_REGISTER_BODY)
        if body is None:
            return
        name = self.headers.get("Lambda-Extension-Name", "")
        given = body if isinstance(body, bytes) else b"too large"
        status, value, message = self.server.sandbox.register_extension(name, given)
        if status != 200:
            self.answer_json(status, {"errorMessage": message, "errorType": value})
            return
        env = self.server.sandbox.env
        info = {
            "functionName": env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            "functionVersion": env.get("AWS_LAMBDA_FUNCTION_VERSION", ""),
            "handler": env.get("_HANDLER", ""),
        }
        headers = {"Content-Type": "application/json", "Lambda-Extension-Identifier": value}
        self.answer(200, json.dumps(info).encode(), headers)

    def _extension_next(self) -> None:
        identifier = self.headers.get("Lambda-Extension-Identifier", "")
        if not self.server.sandbox.hold_extension(identifier, self._peer_gone):
            message = f"Unknown extension {identifier}"
            error = {"errorMessage": message, "errorType": "Extension.UnknownExtensionIdentifier"}
            self.answer_json(403, error)
            return
        self.close_connection = True  # the bootstrap has ended: nothing will ever be sent

    def do_POST(self) -> None:
        if self.path == f"{EXTENSION_PREFIX}/register":
            self._register()
            return
        sandbox = self.server.sandbox
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type", "")
        match = _INVOCATION.match(self.path)
        if match is None and self.path != f"{_PREFIX}/init/error":
            if self.read_body(0) is not None:
                self.not_found()
            return
        streaming = self.headers.get(_MODE, "").lower() == "streaming"
        if match is not None and match.group(2) == "response" and streaming:
            self._stream(match.group(1))
            return
        body = self.read_body(MAX_PAYLOAD)
        if body is None:
            return
        if match is None:
            outcome = sandbox.post_init_error(body if isinstance(body, bytes) else b"", error_type)
        elif isinstance(body, int):
            outcome = sandbox.response_too_large(match.group(1), body)
        elif match.group(2) == "response":
            outcome = sandbox.post_response(match.group(1), body)
        else:
            outcome = sandbox.post_error(match.group(1), body, error_type)
        self._outcome(outcome)

    def _outcome(self, outcome: tuple[int, str, str]) -> None:
        status, kind, message = outcome
        if status == 202:
            self.answer_json(202, {"status": "OK"})
        else:
            self.answer_json(status, {"errorMessage": message, "errorType": kind})

    def _stream(self, request_id: str) -> None:
        """A response posted in streaming mode, passed on piece by piece (module docstring)."""
        sandbox = self.server.sandbox
        content_type = self.headers.get("Content-Type") or "application/octet-stream"
        opened = sandbox.open_stream(request_id, content_type)
        if not isinstance(opened[0], Emulated):
            if self.read_body(0) is not None:  # read and dropped: the refusal can be read
                self._outcome(opened)
            return
        inv, stream = opened
        error: StreamError | None = None
        timed_out = False
        try:
            error = self._pass_on(inv, stream)
        except TimeoutError:
            self.close_connection = True  # the rest of the body is never read
            timed_out = True
            message = f"Task timed out after {sandbox.timeout:.2f} seconds"
            error = StreamError("Sandbox.Timedout", answers.error_json("Sandbox.Timedout", message))
        except (BadChunk, OSError) as exc:
            if isinstance(exc, BadChunk):
                self.bad_request(str(exc))  # answered, and the connection closes
            self.close_connection = True
            message = f"RequestId: {request_id} Error: the runtime's stream broke off: {exc}"
            kind = "Runtime.ExitError"
            error = StreamError(kind, answers.error_json(kind, message))
        finally:
            self.connection.settimeout(None)  # the connection's next request is a long poll
            sandbox.close_stream(inv, error, timed_out)
        if timed_out:
            return  # the invocation is over: the runtime gets no answer, as on Lambda
        if error is not None and error.error_type == _TOO_LARGE:
            self._outcome((413, "RequestEntityTooLarge", "streamed response over the limit"))
        elif not self.close_connection:
            self._outcome((202, "", ""))

    def _pass_on(self, inv: Emulated, stream: ChunkStream) -> StreamError | None:
        """Read the body within the invocation's deadline, pass it on; how it ended."""
        reader = self.chunked_body()
        self.connection.settimeout(max(inv.deadline - time.monotonic(), 0.001))
        if reader is None:  # a streaming post framed by Content-Length: one piece
            body = self.read_body(MAX_PAYLOAD)
            if body is None:
                raise OSError("a malformed body")  # answered 400 already
            if isinstance(body, int):
                return _too_large(inv.request_id)
            if body:
                stream.put(body, inv.deadline)
            return None
        size = 0  # counted here: what a caller that has gone drops counts too
        for piece in reader.pieces():
            size += len(piece)
            if size > MAX_STREAM:
                self.close_connection = True  # the rest is never read
                return _too_large(inv.request_id)
            stream.put(piece, inv.deadline)
            left = inv.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.connection.settimeout(left)
        return _trailer_error(reader)

    def _peer_gone(self) -> bool:
        """True when the bootstrap has closed this connection (e.g. it was killed)."""
        try:
            poller = select.poll()  # not select(): any descriptor number works
            poller.register(self.connection, select.POLLIN)
            if not poller.poll(0):
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
        except BlockingIOError:
            return False
        except OSError:
            return True


_TOO_LARGE = "Function.ResponseSizeTooLarge"


def _too_large(request_id: str) -> StreamError:
    message = f"RequestId: {request_id} Error: the streamed response exceeded {MAX_STREAM} bytes"
    return StreamError(_TOO_LARGE, answers.error_json(_TOO_LARGE, message))


def _trailer_error(reader: ChunkedReader) -> StreamError | None:
    """The error trailers of a finished stream (the ERROR body is base64), if any."""
    error_type = reader.trailers.get(ERROR_TYPE.lower(), "")
    encoded = reader.trailers.get(ERROR_BODY.lower(), "")
    if not error_type and not encoded:
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raw = encoded.encode("latin-1", "replace")
    return StreamError(error_type or "Runtime.Unknown", answers.error_body(raw, error_type))
