"""sor's own log lines, in Lambda's text format or, with AWS_LAMBDA_LOG_FORMAT=JSON, as JSON.

Text lines look like the managed runtimes' own: ``[LEVEL]\\tTIMESTAMP\\tREQUEST_ID\\tMESSAGE``.
Event payloads never go through here unless a middleware such as log-event asks for it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

# C0 controls but tab (the text format's own separator, and Lambda's REPORT lines use it), DEL, C1
# controls and the Unicode line separators: any of them could end or rewrite a line in a viewer.
_CONTROLS = [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROLS}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r"})


def escape(text: object) -> str:
    """``text`` as one line: control characters written as escapes (no log injection)."""
    return str(text).translate(_ESCAPES)


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class Log:
    """Thread-safe writer of whole log lines (child log pumps write from their own threads)."""

    def __init__(self, stream: TextIO | None = None, *, json_format: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.json_format = json_format
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str], stream: TextIO | None = None) -> Log:
        return cls(stream, json_format=env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON")

    def write(self, level: str, message: str, request_id: str = "", **fields: Any) -> None:
        """One log line; ``fields`` appear as keys in JSON and as ``key=value`` in text."""
        if self.json_format:
            import json  # not at module level: `sor run` spawns the language runtime first

            record: dict[str, Any] = {"timestamp": _timestamp(), "level": level.upper()}
            if request_id:
                record["requestId"] = request_id
            record["message"] = message
            record.update(fields)
            line = json.dumps(record, default=str)
        else:
            extra = "".join(f" {escape(k)}={escape(v)}" for k, v in fields.items())
            line = (
                f"[{level.upper()}]\t{_timestamp()}\t{escape(request_id)}\t{escape(message)}{extra}"
            )
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def info(self, message: str, request_id: str = "", **fields: Any) -> None:
        self.write("INFO", message, request_id, **fields)

    def warning(self, message: str, request_id: str = "", **fields: Any) -> None:
        self.write("WARN", message, request_id, **fields)

    def error(self, message: str, request_id: str = "", **fields: Any) -> None:
        self.write("ERROR", message, request_id, **fields)

    def child_line(self, source: str, line: str) -> None:
        """A line a child process wrote on stderr, prefixed with who wrote it."""
        if self.json_format:
            self.write("INFO", line, source=source)
        else:
            with self._lock:
                self.stream.write(f"[{escape(source)}] {escape(line)}\n")
                self.stream.flush()

    def raw(self, line: str) -> None:
        """A line of the function's own output, passed through unchanged (whole, never torn)."""
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
