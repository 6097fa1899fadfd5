"""ERROR objects (errorType, errorMessage, stackTrace) of exceptions, as awslambdaric makes them."""

import os

from _sor_adapter.loading import Fault

# Frames of the adapter itself (and asyncio's) are trimmed from a handler's stack trace.
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ENTRY = os.path.join(os.path.dirname(_PACKAGE.rstrip(os.sep)), "sor_runtime.py")


def error_of(exc):
    """The ERROR object of an exception, with this file's (and asyncio's) frames trimmed."""
    if isinstance(exc, Fault):
        return {
            "errorMessage": exc.message,
            "errorType": exc.error_type,
            "stackTrace": exc.trace or [],
        }
    import traceback  # ~2 ms of imports: only a failed invocation pays for them

    frames = traceback.extract_tb(exc.__traceback__)
    start = 0
    while start < len(frames) and _is_ours(frames[start].filename):
        start += 1
    if start < len(frames):
        frames = frames[start:]
    tuples = [(f.filename, f.lineno, f.name, f.line) for f in frames]
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_list(tuples),
    }


def _is_ours(filename):
    return (
        filename.startswith(_PACKAGE)
        or filename == _ENTRY
        or f"{os.sep}asyncio{os.sep}" in filename
    )
