"""The HTTP front of the embedded emulator (`sor local serve`), through
``sor.emulator.emulator.Emulator.invoke``: RIE's invoke endpoint, `POST
/2015-03-31/functions/NAME/invocations`, answered as the AWS Runtime Interface Emulator answers it
(a streamed answer passed on chunk by chunk, its error in trailers); every other request is a
function URL's (``sor.emulator.function_url``), its response streamed when the function streams.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from email.message import Message
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

from sor.emulator import function_url
from sor.emulator.answers import (
    UNHANDLED,
    InvokeResult,
    client_context_error_answer,
    request_too_large_answer,
    service_error_answer,
)
from sor.emulator.runtime_api import ERROR_BODY, ERROR_TYPE
from sor.emulator.stream import ChunkStream
from sor.http.server import RequestHandler, Server
from sor.limits import MAX_PAYLOAD

if TYPE_CHECKING:
    from sor.emulator.emulator import Emulator

_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


class _InvokeServer(Server):
    def __init__(self, emulator: Emulator, host: str, port: int) -> None:
        super().__init__((host, port), _InvokeHandler)
        self.emulator = emulator


class _InvokeHandler(RequestHandler):
    """RIE's invoke endpoint."""

    server: _InvokeServer

    def do_POST(self) -> None:
        if _INVOKE.match(self.path.split("?", 1)[0]) is None:
            self._function_url()
            return
        body = self.read_body(MAX_PAYLOAD)
        if body is None:
            return
        if isinstance(body, int):
            result = request_too_large_answer(MAX_PAYLOAD)
        else:
            result = self._invoke(body)
        if result.stream is not None:
            self._pass_on(result.stream, 200, result.headers)
        else:
            self.answer(result.status, result.body, result.headers)

    def _invoke(self, body: bytes) -> InvokeResult:
        try:
            context = _client_context(self.headers)
        except ValueError:
            return client_context_error_answer()
        tenant_id = self.headers.get("X-Amz-Tenant-Id")
        kind = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        return self._call(body, context, tenant_id, kind)

    def _call(
        self, body: bytes, context: str | None, tenant_id: str | None, kind: str
    ) -> InvokeResult:
        try:
            return self.server.emulator.invoke(
                body, context, tenant_id=tenant_id, invocation_type=kind
            )
        except Exception as exc:  # every request gets an answer, even from a bug of ours
            self.server.emulator.log.error(f"invoke failed: {type(exc).__name__}: {exc}")
            return service_error_answer(f"{type(exc).__name__}: {exc}")

    def _pass_on(self, stream: ChunkStream, status: int, headers: _Headers) -> None:
        """Relay ``stream`` as it comes; its error in the trailers (the Runtime API's own
        names, the ERROR base64, and ``X-Amz-Function-Error``)."""
        if not self._start(stream, status, headers, _TRAILERS):
            return
        while (piece := stream.next_piece()) is not None:
            if not self.send_piece(piece):
                stream.abandon()
                return
        error = stream.error
        trailers = None
        if error is not None:
            trailers = {
                "X-Amz-Function-Error": UNHANDLED,
                ERROR_TYPE: error.error_type,
                ERROR_BODY: base64.b64encode(error.body).decode("ascii"),
            }
        self.end_stream(trailers)

    def _start(
        self, stream: ChunkStream, status: int, headers: _Headers, trailers: tuple[str, ...] = ()
    ) -> bool:
        try:
            started = self.start_stream(status, headers, trailers)
        except ValueError as exc:  # a header the function set that HTTP cannot carry
            self.server.emulator.log.error(f"function URL response refused: {exc}")
            started = self.answer(*_bad_gateway())
            self.close_connection = True
        if not started:
            stream.abandon()
        return started

    def _function_url(self) -> None:
        """A function URL request: the event from the request, the response from the answer."""
        body = self.read_body(MAX_PAYLOAD)
        if body is None:
            return
        if isinstance(body, int):
            self.answer(413, b'{"Message":"Request Entity Too Large"}', _JSON)
            return
        event = function_url.request_event(
            self.command,
            self.path,
            list(self.headers.items()),
            body,
            self.client_address[0],
            str(uuid.uuid4()),
        )
        result = self._call(json.dumps(event).encode(), None, None, "RequestResponse")
        if result.stream is not None:
            self._http_stream(result.stream)
            return
        if result.status == 413:
            self.answer(413, b'{"Message":"Request Entity Too Large"}', _JSON)
            return
        if result.function_error is not None or result.status != 200:
            what = result.error_type() or result.body[:200].decode("utf-8", "replace")
            self.server.emulator.log.error(f"function URL: the invocation failed ({what})")
            self.answer(*_bad_gateway())
            return
        answer = function_url.response_of(result.body)
        body = b"" if answer.status in (204, 304) else answer.body  # statuses without a body
        try:
            self.answer(answer.status, body, answer.headers)
        except ValueError as exc:  # nothing was sent: a header HTTP cannot carry
            self.server.emulator.log.error(f"function URL response refused: {exc}")
            self.answer(*_bad_gateway())

    def _http_stream(self, stream: ChunkStream) -> None:
        """A streamed answer on a function URL: an HTTP stream's prelude gives the status and
        headers; the body passes through as it arrives. An error after the head has been sent
        ends the response without its last chunk (the client sees a body cut short)."""
        content_type = stream.content_type
        buffer = b""
        if content_type.split(";", 1)[0].strip().lower() != function_url.HTTP_INTEGRATION:
            first = stream.next_piece()  # an error before the first byte is a 502
            if first is not None or stream.error is None:
                self._relay(stream, 200, [("Content-Type", content_type)], first or b"")
                return
        while (piece := stream.next_piece()) is not None:
            buffer += piece
            try:
                head = function_url.split_prelude(buffer)
            except ValueError as exc:
                stream.abandon()
                self.server.emulator.log.error(f"function URL stream refused: {exc}")
                self.answer(*_bad_gateway())
                return
            if head is not None:
                self._relay(stream, head[0], head[1], head[2])
                return
        what = stream.error.error_type if stream.error is not None else "no prelude"
        self.server.emulator.log.error(f"function URL: the stream failed ({what})")
        self.answer(*_bad_gateway())

    def _relay(self, stream: ChunkStream, status: int, headers: _Headers, first: bytes) -> None:
        if not self._start(stream, status, headers):
            return
        if first and not self.send_piece(first):
            stream.abandon()
            return
        while (piece := stream.next_piece()) is not None:
            if not self.send_piece(piece):
                stream.abandon()
                return
        if stream.error is not None:
            self.server.emulator.log.error(
                f"function URL: the stream ended in error ({stream.error.error_type})"
            )
            self.close_connection = True  # no last chunk: the body is visibly cut short
            return
        self.end_stream()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _function_url


_Headers = Mapping[str, str] | Sequence[tuple[str, str]]
_JSON = {"Content-Type": "application/json"}
_TRAILERS = ("X-Amz-Function-Error", ERROR_TYPE, ERROR_BODY)


def _bad_gateway() -> tuple[int, bytes, list[tuple[str, str]]]:
    answer = function_url.BAD_GATEWAY
    return answer.status, answer.body, answer.headers


def _client_context(headers: Message) -> str | None:
    """X-Amz-Client-Context is base64 JSON in the Invoke API; the runtime gets the JSON.
    ValueError when it is not base64 of UTF-8 text."""
    value = headers.get("X-Amz-Client-Context")
    if not value:
        return None
    return base64.b64decode(value, validate=True).decode("utf-8")


def invoke_server(emulator: Emulator, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) for RIE's invoke endpoint; OSError when it cannot bind."""
    return _InvokeServer(emulator, host, port)
