"""The one error hierarchy of sor.

Every error knows its Lambda ``errorType`` and its CLI exit code. Exceptions become exit codes in
one place (``sor.cli.main``) and Lambda error payloads in one place (``SorError.payload``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
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
    """A source event could not be turned into a CloudEvent."""

    error_type = "Sor.EventMappingError"


class FunctionError(SorError):
    """An error reported by the handler (or its loader), carried as the ERROR object it gave.

    ``xray``: the X-Ray error cause the language runtime sent with it, if any (posted as the
    Lambda-Runtime-Function-XRay-Error-Cause header); an error that replaces this one has none.
    """

    exit_code = 1

    def __init__(self, error: dict[str, Any], *, xray: Any = None) -> None:
        super().__init__(str(error.get("errorMessage", "")))
        self.error = error
        self.error_type = str(error.get("errorType", "Error"))
        self.xray = xray if isinstance(xray, dict) else None

    def payload(self) -> dict[str, Any]:
        return dict(self.error)


def error_from_payload(error: Any) -> SorError:
    """Rebuild the error an ERROR object describes (e.g. after an `error` hook replaced it)."""
    if not isinstance(error, dict):
        error = {"errorType": "Error", "errorMessage": str(error)}
    return FunctionError(error)
