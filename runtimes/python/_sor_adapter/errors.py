"""ERROR objects (errorType, errorMessage, stackTrace) of exceptions, as awslambdaric makes them,
and the X-Ray error cause that goes with them (awslambdaric's ``make_xray_fault``)."""

import os

from _sor_adapter.loading import Fault

# Frames of the adapter itself (and asyncio's) are trimmed from a handler's stack trace.
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ENTRY = os.path.join(os.path.dirname(_PACKAGE.rstrip(os.sep)), "sor_runtime.py")


def error_of(exc):
    """The ERROR object of an exception, with this file's (and asyncio's) frames trimmed."""
    return failure_of(exc)[0]


def failure_of(exc):
    """(ERROR, X-Ray cause) of an exception.

    The cause describes the exception itself, its own frames only: a ``__cause__`` or
    ``__context__`` is not followed, as awslambdaric does not. A fault Lambda names itself
    (``Runtime.*``) is a ``LambdaValidationError`` without frames, as there.
    """
    if isinstance(exc, Fault):
        error = {
            "errorMessage": exc.message,
            "errorType": exc.error_type,
            "stackTrace": exc.trace or [],
        }
        return error, xray_cause("LambdaValidationError", exc.message, [])
    import traceback  # ~2 ms of imports: only a failed invocation pays for them

    frames = traceback.extract_tb(exc.__traceback__)
    start = 0
    while start < len(frames) and _is_ours(frames[start].filename):
        start += 1
    if start < len(frames):
        frames = frames[start:]
    tuples = [(f.filename, f.lineno, f.name, f.line) for f in frames]
    error = {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_list(tuples),
    }
    return error, xray_cause(type(exc).__name__, str(exc), tuples)


def xray_cause(error_type, message, tuples):
    """The X-Ray cause of awslambdaric's make_xray_fault: frames outermost first, each path once."""
    stack = [{"label": name, "path": path, "line": line} for path, line, name, _ in tuples]
    return {
        "working_directory": os.getcwd(),
        "exceptions": [{"message": message, "type": error_type, "stack": stack}],
        "paths": list(dict.fromkeys(path for path, _, _, _ in tuples)),
    }


def _is_ours(filename):
    return (
        filename.startswith(_PACKAGE)
        or filename == _ENTRY
        or f"{os.sep}asyncio{os.sep}" in filename
    )
