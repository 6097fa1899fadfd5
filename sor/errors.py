"""The one error hierarchy of sor.

Every error knows its Lambda ``errorType`` and its CLI exit code. Exceptions become exit codes in
one place (``sor.cli``) and Lambda error payloads in one place (``SorError.payload``, posted by
``sor.runtime.answer``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sor.values import frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@frozen
class Problem:
    """One problem found in a configuration, pointing at its place in a file."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path or '<root>'}: {self.message}"


class SorError(Exception):
    """Base of every error sor reports. ``error_type`` is the Lambda errorType."""

    error_type = "Sor.Error"
    exit_code = 1

    def __init__(self, message: str, *, stack_trace: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.stack_trace = list(stack_trace)

    def describe(self) -> str:
        """The error as the command line shows it."""
        return f"{self.error_type}: {self.message}"

    def payload(self) -> dict[str, Any]:
        """The ERROR object of the protocols: errorType, errorMessage, stackTrace."""
        return {
            "errorType": self.error_type,
            "errorMessage": self.message,
            "stackTrace": self.stack_trace,
        }


class UsageError(SorError):
    """Bad command-line usage."""

    error_type = "Sor.UsageError"
    exit_code = 2


class Unreachable(SorError):
    """An endpoint sor was asked to call (`sor invoke`) could not be reached, or hung up."""

    error_type = "Sor.Unreachable"
    exit_code = 2


class Invalid(SorError):
    """What a command checked is invalid; its problems are already printed (exit status 1)."""

    error_type = "Sor.Invalid"
    exit_code = 1

    def describe(self) -> str:
        return self.message


class ConfigError(SorError):
    """An invalid or missing configuration; carries every problem found."""

    error_type = "Sor.ConfigError"
    exit_code = 2

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
        else:
            self.problems = tuple(problems)
            lines = [str(p) for p in self.problems]
            head = f"{len(lines)} problem(s) in the configuration"
            super().__init__("; ".join([head, *lines]) if lines else head, stack_trace=lines)


class MiddlewareError(SorError):
    """A middleware hook failed: bad exit status, output that is not JSON, too much output."""

    error_type = "Sor.MiddlewareError"


class MiddlewareTimeout(MiddlewareError):
    """A middleware hook ran past its timeout (or past the invocation's deadline)."""

    error_type = "Sor.MiddlewareTimeout"


class InvocationTimeout(SorError):
    """The graceful timeout: sor answered before Lambda's own deadline."""

    error_type = "Sor.Timeout"


class RuntimeExited(SorError):
    """The language runtime process died."""

    error_type = "Sor.RuntimeExited"


class EventMappingError(SorError):
    """A source event could not be turned into a CloudEvent.

    ``attribute`` names the CloudEvent attribute at fault when there is one, ``reason`` says what
    is wrong with it (the message without the place): an HTTP caller gets both in its answer.
    """

    error_type = "Sor.EventMappingError"

    def __init__(
        self, message: str, *, attribute: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.attribute = attribute
        self.reason = reason if reason is not None else message


class FunctionError(SorError):
    """An error reported by the handler (or its loader), carried as the ERROR object it gave.

    ``language``: the language runtime that reported it (its managed runtime's shape is the
    shape it is posted in); None for an ERROR a middleware gave. ``xray``: the X-Ray cause the
    runtime sent with it, if any.
    """

    exit_code = 1

    def __init__(
        self,
        error: dict[str, Any],
        *,
        language: str | None = None,
        xray: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(str(error.get("errorMessage", "")))
        self.error = error
        self.error_type = str(error.get("errorType", "Error"))
        self.language = language
        self.xray = xray

    def payload(self) -> dict[str, Any]:
        return dict(self.error)


def error_from_payload(error: Any) -> SorError:
    """Rebuild the error an ERROR object describes (e.g. after an `error` hook replaced it)."""
    if not isinstance(error, dict):
        error = {"errorType": "Error", "errorMessage": str(error)}
    return FunctionError(error)
