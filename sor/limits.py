"""Lambda's limits, as the platform enforces them: the one place sor writes them down."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# Bytes of a synchronous event or response: 6 MiB and the 100 bytes Lambda's messages name.
MAX_PAYLOAD = 6 * 1024 * 1024 + 100
# Bytes of one protocol line between sor and a language runtime: a payload and its envelope.
MAX_MESSAGE = 7 * 1024 * 1024
# Bytes of a streamed response (SPEC "Response streaming"): more ends the stream with an error.
MAX_STREAM = 200 * 1024 * 1024
# Bytes of one streamed chunk in a protocol `chunk` message (runtimes/PROTOCOL.md).
MAX_CHUNK = 1024 * 1024
# Bytes of the error document in a stream's trailers (before base64; 4/3 of it after): sor's
# bound, not Lambda's, so that each trailer line stays under the 8 KiB that HTTP stacks take for a
# header line (sor's emulator among them); a longer one loses its stack trace.
MAX_ERROR_TRAILER = 5 * 1024
# Characters of an errorType sent in a header or trailer; a longer one is cut.
MAX_ERROR_TYPE = 256
# Seconds a function may run at most.
MAX_FUNCTION_TIMEOUT = 900.0


def too_large_error(limit: int = MAX_PAYLOAD) -> dict[str, Any]:
    """The error Lambda reports for a response over ``limit`` (its own words): MAX_PAYLOAD, or
    MAX_STREAM for a streamed one."""
    return {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": (
            f"Response payload size exceeded maximum allowed payload size ({limit} bytes)."
        ),
        "stackTrace": [],
    }
