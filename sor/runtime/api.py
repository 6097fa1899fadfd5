"""Client of the Lambda Runtime API (`/2018-06-01/runtime/...`).

Built on sor.http.client, neither ``requests`` nor ``http.client``: both cost more per call
than the rest of sor's own work, and more imports at every cold start (measured in
docs/performance.md). One keep-alive connection is reused for every call; a connection the server
dropped is reopened, and an API that is briefly unreachable is retried with backoff before a
clear ``RuntimeApiError``. A POST is retried only when no byte of it was sent: one that was sent
may have been taken, and posting it again could answer an invocation twice.
"""

from __future__ import annotations

import json
import select
import time
from collections.abc import Callable, Iterable, Mapping

from sor.errors import SorError
from sor.http.client import HttpConnection, Interrupted, ProtocolError, Response, encode_request
from sor.limits import MAX_ERROR_TRAILER, MAX_ERROR_TYPE
from sor.values import field, frozen

API_VERSION = "2018-06-01"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
STREAM_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
XRAY_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"
XRAY_CAUSE_LIMIT = 1 << 20  # bytes: a larger cause is left out, as awslambdaric does
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # ~3 s in all before giving up
_USER_AGENT = "sor"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, TypeVar

    T = TypeVar("T")
    Shape = Literal["python", "node"]


class RuntimeApiError(SorError):
    """The Runtime API could not be reached, or answered something unusable."""

    error_type = "Sor.RuntimeApiError"


@frozen
class Invocation:
    """One invocation as `GET .../invocation/next` delivered it."""

    request_id: str
    event: bytes
    deadline_ms: int
    invoked_function_arn: str = ""
    trace_id: str | None = None
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_response(
        cls, headers: Mapping[str, str], body: bytes, lower: Mapping[str, str] | None = None
    ) -> Invocation:
        """Read the Lambda-Runtime-* headers (``lower``: the same by lower-case name, when the
        caller has them); RuntimeApiError when a required one is missing."""
        if lower is None:
            lower = {k.lower(): v for k, v in headers.items()}
        request_id = lower.get("lambda-runtime-aws-request-id")
        if not request_id:
            raise RuntimeApiError("invocation/next answered without Lambda-Runtime-Aws-Request-Id")
        try:
            deadline_ms = int(lower.get("lambda-runtime-deadline-ms", ""))
        except ValueError:
            raise RuntimeApiError(
                "invocation/next answered without a numeric Lambda-Runtime-Deadline-Ms"
            ) from None
        inv = cls.__new__(cls)
        # Every field at once, past the frozen __setattr__: the constructor's generic argument
        # handling costs ~8 us, at every invocation (tests/runtime/test_warm_path.py: equal).
        inv.__dict__.update(
            request_id=request_id,
            event=body,
            deadline_ms=deadline_ms,
            invoked_function_arn=lower.get("lambda-runtime-invoked-function-arn", ""),
            trace_id=lower.get("lambda-runtime-trace-id"),
            client_context=lower.get("lambda-runtime-client-context"),
            cognito_identity=lower.get("lambda-runtime-cognito-identity"),
            tenant_id=lower.get("lambda-runtime-aws-tenant-id"),
            content_type=lower.get("content-type"),
            headers=dict(headers),
        )
        return inv


class RuntimeApiClient:
    """Talks to the Runtime API at ``address`` (``host:port``, from AWS_LAMBDA_RUNTIME_API)."""

    def __init__(
        self,
        address: str,
        *,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not address or "/" in address:
            raise RuntimeApiError(f"AWS_LAMBDA_RUNTIME_API must be host:port, not {address!r}")
        self.address = address
        self.retry_delays = retry_delays
        self._sleep = sleep
        try:
            self._conn = HttpConnection(address)
        except ValueError as e:
            raise RuntimeApiError(f"AWS_LAMBDA_RUNTIME_API must be host:port: {e}") from None
        self._base = f"/{API_VERSION}/runtime"
        # The two requests of every invocation, encoded once (`next`) or from a template
        # (`respond`): the same bytes `_call` would send.
        self._next_url = f"{self._base}/invocation/next"
        self._next = encode_request(
            "GET", self._next_url, address, {"User-Agent": _USER_AGENT}, None
        )
        self._post_head = "\r\n".join(
            [
                f"Host: {address}",
                f"User-Agent: {_USER_AGENT}",
                "Content-Type: application/json",
                "Content-Length: ",
            ]
        )

    def next(self, interrupt_fd: int | None = None) -> Invocation:
        """Block until the next invocation arrives.

        Raises sor.http.client.Interrupted when ``interrupt_fd`` becomes readable before one
        started to arrive.
        """
        response = self._retrying(
            f"GET {self._next_url}",
            lambda: self._send("GET", self._next_url, self._next, interrupt_fd),
            idempotent=True,
            interrupt_fd=interrupt_fd,
        )
        if response.status != 200:
            raise RuntimeApiError(
                f"invocation/next answered HTTP {response.status}: {response.body[:200]!r}"
            )
        return Invocation.from_response(response.headers, response.body, response.lower)

    def respond(self, request_id: str, body: bytes) -> int:
        """Post a response; the HTTP status (202 accepted, 413 too large, ...)."""
        url = f"{self._base}/invocation/{request_id}/response"
        head = f"POST {url} HTTP/1.1\r\n{self._post_head}{len(body)}\r\n\r\n"
        data = head.encode("latin-1", "replace") + body
        return self._retrying(
            f"POST {url}",
            lambda: self._send("POST", url, data, None),
            idempotent=False,
            interrupt_fd=None,
        ).status

    def respond_stream(
        self,
        request_id: str,
        content_type: str,
        chunks: Iterable[bytes],
        trailers: Callable[[], Mapping[str, str]],
    ) -> int:
        """Post a streamed response: each of ``chunks`` sent as it is pulled, then the
        ``trailers()`` (the error trailers, or none); the HTTP status.

        Retried only when not a byte of it was sent (no chunk was pulled then).
        """
        url = f"{self._base}/invocation/{request_id}/response"
        headers = {
            "User-Agent": _USER_AGENT,
            STREAM_MODE_HEADER: "streaming",
            "Trailer": f"{ERROR_TYPE_HEADER}, {ERROR_BODY_TRAILER}",
            "Content-Type": content_type,
        }

        def once() -> int:
            try:
                return self._conn.stream("POST", url, headers, chunks, trailers).status
            except ProtocolError as e:
                raise RuntimeApiError(
                    f"the Lambda Runtime API at {self.address} answered a streamed POST {url} "
                    f"with something that is not HTTP: {e}"
                ) from None

        return self._retrying(f"POST {url}", once, idempotent=False, interrupt_fd=None)

    def fail(
        self,
        request_id: str,
        error: Mapping[str, Any],
        shape: Shape = "python",
        xray: Mapping[str, Any] | None = None,
    ) -> int:
        """Post an invocation error in the managed runtime's ``shape``, with its X-Ray cause
        when it has one (left out over Lambda's limit); the HTTP status."""
        body = error_document(error, request_id, shape)
        headers = {"Content-Type": "application/json", ERROR_TYPE_HEADER: _error_type(error)}
        if xray is not None:
            cause = json.dumps(xray, ensure_ascii=True)
            if len(cause) < XRAY_CAUSE_LIMIT:
                headers[XRAY_CAUSE_HEADER] = cause
        return self._call("POST", f"/invocation/{request_id}/error", body, headers)[0]

    def init_error(self, error: Mapping[str, Any], shape: Shape = "python") -> int:
        """Report a failed init (config error, handler that cannot load); the HTTP status."""
        body = error_document(error, "", shape)
        headers = {"Content-Type": "application/json", ERROR_TYPE_HEADER: _error_type(error)}
        return self._call("POST", "/init/error", body, headers)[0]

    def close(self) -> None:
        self._conn.close()

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        interrupt_fd: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"User-Agent": _USER_AGENT, **headers}
        url = self._base + path
        return self._retrying(
            f"{method} {url}",
            lambda: self._once(method, url, body, headers, interrupt_fd),
            idempotent=method == "GET",
            interrupt_fd=interrupt_fd,
        )

    def _send(self, method: str, url: str, data: bytes, interrupt_fd: int | None) -> Response:
        """One exchange of the request ``data`` (encoded already)."""
        try:
            return self._conn.send_encoded(method, data, interrupt_fd=interrupt_fd)
        except ProtocolError as e:
            raise RuntimeApiError(
                f"the Lambda Runtime API at {self.address} answered {method} {url} with "
                f"something that is not HTTP: {e}"
            ) from None

    def _once(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        interrupt_fd: int | None,
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            response = self._conn.request(method, url, headers, body, interrupt_fd=interrupt_fd)
        except ProtocolError as e:
            raise RuntimeApiError(
                f"the Lambda Runtime API at {self.address} answered {method} {url} with "
                f"something that is not HTTP: {e}"
            ) from None
        return response.status, response.headers, response.body

    def _retrying(
        self, what: str, call: Callable[[], T], *, idempotent: bool, interrupt_fd: int | None
    ) -> T:
        # A keep-alive connection the server closed fails once at once: retry without waiting.
        delays = (0.0, *self.retry_delays)
        last: Exception | None = None
        for delay in delays:
            if delay:
                self._pause(delay, interrupt_fd)
            try:
                return call()
            except OSError as e:  # refused, reset, closed; host unreachable, DNS failure
                if not idempotent and self._conn.request_sent:
                    raise RuntimeApiError(
                        f"the Lambda Runtime API at {self.address} failed during {what} after "
                        f"the request was sent ({e}); not retried: it may have been taken"
                    ) from None
                last = e
        raise RuntimeApiError(
            f"the Lambda Runtime API at {self.address} is unreachable ({what}): {last}"
        )

    def _pause(self, delay: float, interrupt_fd: int | None) -> None:
        """Wait before a retry; only a call given ``interrupt_fd`` (`next`) is cut short."""
        if interrupt_fd is None:
            self._sleep(delay)  # an answer being posted is never abandoned for a signal
            return
        waiter = select.poll()
        waiter.register(interrupt_fd, select.POLLIN)
        if waiter.poll(delay * 1000):
            raise Interrupted


def error_document(error: Mapping[str, Any], request_id: str, shape: Shape = "python") -> bytes:
    """The error document a managed runtime posts: awslambdaric's (errorMessage, errorType,
    requestId, stackTrace, then any other member) or Lambda's Node runtime's (errorType,
    errorMessage, trace)."""
    if shape == "node":
        node = {
            "errorType": error.get("errorType") or "",
            "errorMessage": error.get("errorMessage") or "",
            "trace": error.get("stackTrace") or [],
        }
        return json.dumps(node).encode()
    doc = {
        "errorMessage": error.get("errorMessage") or "",
        "errorType": error.get("errorType") or "",
        "requestId": request_id,
        "stackTrace": error.get("stackTrace") or [],
    }
    extra = {k: v for k, v in error.items() if k not in doc}
    return json.dumps({**doc, **extra}).encode()


def error_trailers(error: Mapping[str, Any], request_id: str, shape: Shape) -> dict[str, str]:
    """The trailers of a stream that ended with ``error``: its type, and its error document
    in base64 (what Lambda's runtime clients send)."""
    import base64  # only a stream that failed pays for it

    document = error_document(error, request_id, shape)
    if len(document) > MAX_ERROR_TRAILER:
        message = str(error.get("errorMessage") or "")[:1024]
        short: dict[str, Any] = {
            "errorType": _error_type(error),
            "errorMessage": f"{message} (the error was {len(document)} bytes: shortened for the "
            "stream's trailers, its stack trace left out)",
            "stackTrace": [],
        }
        document = error_document(short, request_id, shape)
    body = base64.b64encode(document).decode("ascii")
    return {ERROR_TYPE_HEADER: _error_type(error), ERROR_BODY_TRAILER: body}


def _error_type(error: Mapping[str, Any]) -> str:
    # Header values cannot carry newlines; error types never legitimately do.
    kind = str(error.get("errorType") or "Unknown")[:MAX_ERROR_TYPE]
    return kind.replace("\r", " ").replace("\n", " ")
