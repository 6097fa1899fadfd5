"""The answer to an invocation, as a value, and `post`: the one function that sends it.

An invocation computes its answer (a response body, or an ERROR) and never posts anything
itself. `post` owns what Lambda's Runtime API requires of an answer: the size limit (a body
over it is never sent: the error Lambda would give is posted instead, as it is when the API
refuses a body with 413), the shape of error documents, and exactly one answer per invocation.
A `Stream` is posted as Lambda's streaming responses are (SPEC "Response streaming"): its chunks
pulled and sent one at a time (never held whole), the HTTP prelude, the 200 MiB limit, and the
error trailers when it fails after its first byte.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping

from sor.errors import FunctionError, SorError
from sor.limits import MAX_PAYLOAD, MAX_STREAM, too_large_error
from sor.runtime.api import (
    RuntimeApiClient,
    RuntimeApiError,
    error_document,
    error_trailers,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sor.runtime.api import Shape

PRELUDE_END = b"\0" * 8  # after an HTTP stream's prelude JSON (Lambda's integration format)


class Response:
    """A successful answer: the response body."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body


class Failure:
    """An error answer: an ERROR, posted in the shape of the managed runtime that gave it."""

    __slots__ = ("error", "shape", "xray")

    def __init__(
        self,
        error: Mapping[str, Any],
        shape: Shape = "python",
        xray: Mapping[str, Any] | None = None,
    ) -> None:
        self.error = error
        self.shape = shape
        self.xray = xray


def started(body: Generator[bytes, None, None]) -> Generator[bytes, None, None]:
    """``body`` run to its first `yield`, which must yield ``b""`` inside its ``try``: a
    generator closed before its first pull never runs its ``finally``, and a stream's body
    cleans up there (its source abandoned, its process freed) however early it is closed."""
    if next(body) != b"":
        raise AssertionError('a stream body starts with `yield b""`')
    return body


class Stream:
    """A streamed answer: its metadata, and its body's chunks pulled one at a time by `post`.

    ``prelude``: an HTTP response's statusCode/headers/cookies (an HTTP stream), or None.
    ``chunks`` raises a `SorError` when the stream fails after it began (the handler's error, a
    timeout, a runtime that died); `post` closes it when it stops pulling early (the size limit,
    the API failing), which abandons its source.
    """

    __slots__ = ("chunks", "content_type", "prelude")

    def __init__(
        self,
        content_type: str,
        prelude: dict[str, Any] | None,
        chunks: Generator[bytes, None, None],
    ) -> None:
        self.content_type = content_type
        self.prelude = prelude
        self.chunks = chunks

    def metadata(self) -> dict[str, Any]:
        """What an `after` hook sees: the prelude, or ``{"contentType": ...}``."""
        return (
            dict(self.prelude) if self.prelude is not None else {"contentType": self.content_type}
        )

    def with_metadata(self, metadata: Any) -> Stream:
        """The same chunks under ``metadata`` (an `after` hook's answer): exactly
        ``{"contentType": TYPE}`` is a plain stream, any other object an HTTP prelude.

        Raises ValueError naming what is wrong.
        """
        from sor.runtime.protocol import HTTP_INTEGRATION

        if not isinstance(metadata, dict):
            raise ValueError(
                f"a stream's metadata must be an object, not {type(metadata).__name__}"
            )
        if set(metadata) == {"contentType"}:
            kind = metadata["contentType"]
            if not isinstance(kind, str) or not kind or not kind.isprintable():
                raise ValueError(f"contentType must be a printable string, not {kind!r}")
            return Stream(kind, None, self.chunks)
        return Stream(HTTP_INTEGRATION, metadata, self.chunks)


Answer = Response | Failure | Stream


def failure(exc: SorError) -> Failure:
    """The answer of a `SorError`: a handler's error keeps its language's shape (SPEC)."""
    if isinstance(exc, FunctionError):
        shape: Shape = "node" if exc.language == "node" else "python"
        return Failure(exc.payload(), shape, exc.xray)
    return Failure(exc.payload())


def unexpected(exc: BaseException, doing: str = "unexpectedly") -> Failure:
    """The answer of an exception sor did not expect (a bug of sor): still an answer."""
    message = f"sor failed {doing}: {type(exc).__name__}: {exc}"
    return Failure({"errorType": "Sor.Error", "errorMessage": message, "stackTrace": []})


def post(api: RuntimeApiClient, request_id: str, answer: Answer) -> tuple[str, dict[str, Any]]:
    """Send ``answer`` for ``request_id``: the outcome for the log line and its extra fields.

    Raises only RuntimeApiError (the API itself failed).
    """
    try:
        if isinstance(answer, Response):
            return _respond(api, request_id, answer.body)
        if isinstance(answer, Stream):
            return _stream(api, request_id, answer)
        return _fail(api, request_id, answer), {}
    except RuntimeApiError:
        raise
    except Exception as exc:  # a bug while answering, before anything was sent
        return _fail(api, request_id, unexpected(exc, "while answering")), {}


def _respond(api: RuntimeApiClient, request_id: str, body: bytes) -> tuple[str, dict[str, Any]]:
    size = {"size": len(body)}
    # Lambda refuses a body over its limit; some servers answer 413 and hang up before reading
    # it, so it is never sent: the error Lambda would report is posted instead.
    status = 413 if len(body) > MAX_PAYLOAD else api.respond(request_id, body)
    if status == 413:  # too large: known here, or refused by the API, which still awaits one
        outcome = _fail(api, request_id, Failure(too_large_error()))
        return outcome, size
    return ("success" if status < 300 else f"response rejected (HTTP {status})"), size


def _fail(api: RuntimeApiClient, request_id: str, answer: Failure) -> str:
    error = answer.error
    if len(error_document(error, request_id, answer.shape)) > MAX_PAYLOAD:
        error = too_large_error()  # an error document is bounded as a response is
    status = api.fail(request_id, error, answer.shape, answer.xray)
    outcome = str(error.get("errorType") or "error")
    if status >= 300 and error.get("errorType") == "Function.ResponseSizeTooLarge":
        outcome += f" (error rejected, HTTP {status})"
    return outcome


def _stream(api: RuntimeApiClient, request_id: str, stream: Stream) -> tuple[str, dict[str, Any]]:
    sent = {"size": 0, "chunks": 0}
    ended: list[Failure] = []  # the error the stream ended with, once known

    def body() -> Iterator[bytes]:
        try:
            if stream.prelude is not None:
                import json

                head = json.dumps(stream.prelude, ensure_ascii=False, separators=(",", ":"))
                yield _counted(head.encode("utf-8", "surrogatepass") + PRELUDE_END)
            for chunk in stream.chunks:
                if sent["size"] + len(chunk) > MAX_STREAM:  # Lambda's limit: never sent
                    ended.append(Failure(too_large_error(MAX_STREAM)))
                    return
                yield _counted(chunk)
        except SorError as exc:
            ended.append(failure(exc))
        except Exception as exc:  # a bug after the first byte: still ends the stream
            ended.append(unexpected(exc, "while streaming"))

    def _counted(chunk: bytes) -> bytes:
        sent["size"] += len(chunk)
        sent["chunks"] += 1
        return chunk

    def trailers() -> dict[str, str]:
        if not ended:
            return {}
        try:
            return error_trailers(ended[0].error, request_id, ended[0].shape)
        except Exception as exc:  # an ERROR that cannot be encoded
            return error_trailers(unexpected(exc, "encoding the error").error, request_id, "python")

    try:
        status = api.respond_stream(request_id, stream.content_type, body(), trailers)
    finally:
        stream.chunks.close()  # done: nothing; cut short: its source is abandoned
    fields: dict[str, Any] = {"stream": True, **sent}
    if status >= 300:
        return f"response rejected (HTTP {status})", fields
    if ended:
        return f"{ended[0].error.get('errorType') or 'error'} (after the first byte)", fields
    return "success", fields
