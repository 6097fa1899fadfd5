"""RIE's invoke endpoint in front of the embedded emulator (`sor local serve`):
`POST /2015-03-31/functions/NAME/invocations`, answered as the AWS Runtime Interface Emulator
answers it, through ``sor.emulator.emulator.Emulator.invoke``.
"""

from __future__ import annotations

import base64
import re
from email.message import Message
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

from sor.emulator.answers import (
    InvokeResult,
    client_context_error_answer,
    request_too_large_answer,
    service_error_answer,
)
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
        body = self.read_body(MAX_PAYLOAD)
        if body is None:
            return
        if _INVOKE.match(self.path.split("?", 1)[0]) is None:
            self.not_found()
            return
        if isinstance(body, int):
            result = request_too_large_answer(MAX_PAYLOAD)
        else:
            result = self._invoke(body)
        self.answer(result.status, result.body, result.headers)

    def _invoke(self, body: bytes) -> InvokeResult:
        try:
            context = _client_context(self.headers)
        except ValueError:
            return client_context_error_answer()
        tenant_id = self.headers.get("X-Amz-Tenant-Id")
        kind = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        try:
            return self.server.emulator.invoke(
                body, context, tenant_id=tenant_id, invocation_type=kind
            )
        except Exception as exc:  # every request gets an answer, even from a bug of ours
            self.server.emulator.log.error(f"invoke failed: {type(exc).__name__}: {exc}")
            return service_error_answer(f"{type(exc).__name__}: {exc}")

    def do_GET(self) -> None:
        self.not_found()


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
