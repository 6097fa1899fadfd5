"""What an invoke caller gets back, shaped as the AWS Runtime Interface Emulator (RIE) answers.

RIE answers a success, a function error and a timeout with status 200 (the body tells them apart)
and an init failure or a runtime that died with 502. Its Content-Type is Go's guess from the body
(``text/plain; charset=utf-8`` for text). Unlike RIE (aws-lambda-runtime-interface-emulator#20),
every error answer also carries ``X-Amz-Function-Error: Unhandled``, as Lambda's Invoke API does.
Pure functions, no IO.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sor.emulator.stream import ChunkStream

UNHANDLED = "Unhandled"


@dataclass(frozen=True)
class InvokeResult:
    """One invocation's answer: HTTP status, body, headers, and Lambda's FunctionError if any;
    a streamed answer has its ``stream`` (its pieces come as the runtime sends them) and no body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    function_error: str | None = None
    stream: ChunkStream | None = None

    def error_type(self) -> str | None:
        """The errorType of an error answer whose body is an ERROR object."""
        if self.function_error is None:
            return None
        try:
            error = json.loads(self.body)
        except ValueError:
            return None
        value = error.get("errorType") if isinstance(error, dict) else None
        return str(value) if value is not None else None


def _content_type(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def _answer(status: int, body: bytes, function_error: str | None) -> InvokeResult:
    headers = {"Content-Type": _content_type(body)}
    if function_error is not None:
        headers["X-Amz-Function-Error"] = function_error
    return InvokeResult(status, body, headers, function_error)


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def success_answer(body: bytes) -> InvokeResult:
    """The runtime posted a response."""
    return _answer(200, body, None)


def streamed_answer(stream: ChunkStream) -> InvokeResult:
    """The runtime streams its response: 200, the content type it posted with."""
    return InvokeResult(200, b"", {"Content-Type": stream.content_type}, None, stream)


def error_json(error_type: str, message: str) -> bytes:
    """An ERROR object of the emulator's own (a stream that ended in error, for instance)."""
    return _error(error_type, message)


def function_error_answer(body: bytes) -> InvokeResult:
    """The runtime posted an invocation error: its ERROR JSON, verbatim."""
    return _answer(200, body, UNHANDLED)


def timeout_answer(timeout: float) -> InvokeResult:
    """The invocation ran past the function timeout (RIE's plain-text body)."""
    return _answer(200, f"Task timed out after {timeout:.2f} seconds".encode(), UNHANDLED)


def exit_answer(request_id: str, reason: str) -> InvokeResult:
    """The runtime process ended before answering."""
    return _answer(
        502, _error("Runtime.ExitError", f"RequestId: {request_id} Error: {reason}"), UNHANDLED
    )


def init_error_answer(body: bytes) -> InvokeResult:
    """The runtime reported an init error: its ERROR JSON, verbatim."""
    return _answer(502, body, UNHANDLED)


def spawn_error_answer(request_id: str, message: str) -> InvokeResult:
    """The runtime could not be started at all."""
    body = _error("Runtime.InvalidEntrypoint", f"RequestId: {request_id} Error: {message}")
    return _answer(502, body, UNHANDLED)


def too_large_answer(size: int, limit: int) -> InvokeResult:
    """The runtime's response was over Lambda's limit."""
    message = (
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({limit} bytes)."
    )
    return _answer(200, _error("Function.ResponseSizeTooLarge", message), UNHANDLED)


def request_too_large_answer(limit: int) -> InvokeResult:
    """The event itself was over Lambda's limit; the function is not invoked."""
    message = f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
    return _answer(413, _error("RequestEntityTooLarge", message), None)


def client_context_error_answer() -> InvokeResult:
    """The client context was not base64 of a JSON object: refused, as Lambda refuses it."""
    message = "Client context must be a valid Base64-encoded JSON object."
    return _answer(400, _error("InvalidRequestContentException", message), None)


def accepted_answer() -> InvokeResult:
    """``X-Amz-Invocation-Type: Event``: queued, to run in the background (Lambda's 202)."""
    return InvokeResult(202, b"", {"Content-Type": "application/json"})


def dry_run_answer() -> InvokeResult:
    """``X-Amz-Invocation-Type: DryRun``: the request is valid; nothing runs (Lambda's 204)."""
    return InvokeResult(204, b"", {})


def invocation_type_error_answer(value: str) -> InvokeResult:
    """An ``X-Amz-Invocation-Type`` that is none of Lambda's three (its validation error)."""
    message = (
        f"1 validation error detected: Value '{value}' at 'invocationType' failed to satisfy "
        "constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
    )
    return _answer(400, _error("ValidationException", message), None)


def tenant_id_error_answer() -> InvokeResult:
    """An ``X-Amz-Tenant-Id`` that cannot be passed on (empty of printable ASCII, or too long)."""
    message = "Tenant id must be 1 to 256 printable ASCII characters."
    return _answer(400, _error("InvalidParameterValueException", message), None)


def service_error_answer(message: str) -> InvokeResult:
    """The emulator itself failed to run the invocation (Lambda's ServiceException)."""
    return _answer(500, _error("ServiceException", message), None)


def error_body(body: bytes, error_type: str) -> bytes:
    """The ERROR JSON as posted; a body that is not a JSON object is wrapped, as Lambda does."""
    try:
        if isinstance(json.loads(body), dict):
            return body
    except ValueError:
        pass
    message = body.decode("utf-8", "replace")
    return json.dumps(
        {"errorMessage": message, "errorType": error_type or "Runtime.Unknown"}
    ).encode()


_SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGINT: "interrupt",
}


def exit_reason(code: int | None) -> str:
    """Lambda's words for how the runtime ended (Go's ``exec.ExitError`` text)."""
    if code is None or code == 0:
        return "Runtime exited without providing a reason"
    if code < 0:
        try:
            word = _SIGNAL_WORDS.get(signal.Signals(-code), f"signal {-code}")
        except ValueError:
            word = f"signal {-code}"
        return f"Runtime exited with error: signal: {word}"
    return f"Runtime exited with error: exit status {code}"
