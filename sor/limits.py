"""Lambda's limits, as the platform enforces them: the one place sor writes them down."""

from __future__ import annotations

from typing import Any

# Bytes of a synchronous event or response: 6 MiB and the 100 bytes Lambda's messages name.
MAX_PAYLOAD = 6 * 1024 * 1024 + 100
# Bytes of a streamed response (Lambda's response streaming limit, 200 MiB).
MAX_STREAM = 200 * 1024 * 1024
# Bytes of one protocol line between sor and a language runtime: a payload and its envelope.
MAX_MESSAGE = 7 * 1024 * 1024
# Seconds a function may run at most.
MAX_FUNCTION_TIMEOUT = 900.0


def too_large_error() -> dict[str, Any]:
    """The error Lambda reports for a response over MAX_PAYLOAD (its own words)."""
    return {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": (
            f"Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."
        ),
        "stackTrace": [],
    }
