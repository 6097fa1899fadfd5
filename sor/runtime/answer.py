"""The answer to an invocation, as a value, and `post`: the one function that sends it.

An invocation computes its answer (a response body, or an ERROR) and never posts anything
itself. `post` owns what Lambda's Runtime API requires of an answer: the size limit (a body
over it is never sent: the error Lambda would give is posted instead, as it is when the API
refuses a body with 413), the shape of error documents, and exactly one answer per invocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sor.errors import FunctionError, SorError
from sor.limits import MAX_PAYLOAD, too_large_error
from sor.runtime.api import RuntimeApiClient, RuntimeApiError, Shape, error_document


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


Answer = Response | Failure


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
