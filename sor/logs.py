"""sor's log lines, in Lambda's text format or, with AWS_LAMBDA_LOG_FORMAT=JSON, as JSON.

Text lines look like the managed runtimes' own: ``[LEVEL]\\tTIMESTAMP\\tREQUEST_ID\\tMESSAGE``;
JSON lines are objects with timestamp, level, message, requestId (when there is one), then sor's
fields. AWS_LAMBDA_LOG_LEVEL drops sor's own lines below it (the function's output is filtered
by its language runtime, never here). When `sor run` is given Lambda's telemetry descriptor
(docs/logs.md) every record, sor's and the function's, is written there as one frame
(sor.telemetry). Event payloads never go through here unless a middleware such as log-event
asks for it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from sor.telemetry import FrameSink

TELEMETRY_FD = "_LAMBDA_TELEMETRY_LOG_FD"
# Level names sor understands in AWS_LAMBDA_LOG_LEVEL (Python's and the platform's spellings).
LEVELS = {
    "NOTSET": 0,
    "TRACE": 1,
    "DEBUG": 2,
    "INFO": 3,
    "WARN": 4,
    "WARNING": 4,
    "ERROR": 5,
    "FATAL": 6,
    "CRITICAL": 6,
}

# C0 controls but tab (the text format's own separator, and Lambda's REPORT lines use it), DEL, C1
# controls and the Unicode line separators: any of them could end or rewrite a line in a viewer.
_CONTROLS = [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROLS}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r"})


def escape(text: object) -> str:
    """``text`` as one line: control characters written as escapes (no log injection)."""
    text = str(text)
    if text.isprintable():  # the usual case, decided in C: nothing to escape
        return text
    return text.translate(_ESCAPES)


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _timestamp() -> str:
    global _second  # one tuple, swapped whole: threads at worst format a second twice
    now = time.time()
    second, text = _second
    if int(now) != second:
        second = int(now)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{int(now % 1 * 1000):03d}Z"


def level_threshold(value: str | None) -> int:
    """The lowest level of sor's own lines that AWS_LAMBDA_LOG_LEVEL keeps (0: all of them).

    Any case; an unset or unknown value keeps everything, as awslambdaric leaves the level alone.
    """
    return LEVELS.get((value or "").upper(), 0)


class Log:
    """Thread-safe writer of whole log records (child log pumps write from their own threads)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        json_format: bool = False,
        threshold: int = 0,
        frames: FrameSink | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.json_format = json_format
        self.threshold = threshold
        self._frames = frames
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], stream: TextIO | None = None, *, telemetry: bool = False
    ) -> Log:
        """The log the environment asks for; ``telemetry``: write frames to the descriptor of
        _LAMBDA_TELEMETRY_LOG_FD when it is set (only `sor run` owns that descriptor)."""
        log = cls(
            stream,
            json_format=env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON",
            threshold=level_threshold(env.get("AWS_LAMBDA_LOG_LEVEL")),
        )
        if telemetry and env.get(TELEMETRY_FD):
            from sor.telemetry import FrameSink  # only a configured descriptor pays for it

            try:
                log._frames = FrameSink.from_value(env[TELEMETRY_FD])
            except ValueError as e:
                log.warning(f"{e}; logging to stderr instead")
        return log

    @property
    def framed(self) -> bool:
        """True when records go to the telemetry descriptor: children's output must be read."""
        return self._frames is not None

    def write(self, level: str, message: str, request_id: str = "", **fields: Any) -> None:
        """One log line; ``fields`` appear as keys in JSON and as ``key=value`` in text."""
        name = level.upper()
        number = LEVELS.get(name, 0)
        if number < self.threshold:
            return
        if self.json_format:
            import json  # not at module level: `sor run` spawns the language runtime first

            record: dict[str, Any] = {"timestamp": _timestamp(), "level": name, "message": message}
            if request_id:
                record["requestId"] = request_id
            record.update(fields)
            line = json.dumps(record, default=str)
        else:
            # Every field escaped: one record, one line, whatever a message holds (no injection).
            # Escaping the whole text is escaping each part (it maps characters one by one), so
            # the usual line, all printable, is checked in three C calls.
            extra = "".join([f" {k!s}={v!s}" for k, v in fields.items()])
            rid, text = str(request_id), str(message)
            if not (extra.isprintable() and rid.isprintable() and text.isprintable()):
                rid, text, extra = escape(rid), escape(text), escape(extra)
            line = f"[{name}]\t{_timestamp()}\t{rid}\t{text}{extra}"
        self._emit(line, number, self.json_format)

    def info(self, message: str, request_id: str = "", **fields: Any) -> None:
        self.write("INFO", message, request_id, **fields)

    def warning(self, message: str, request_id: str = "", **fields: Any) -> None:
        self.write("WARN", message, request_id, **fields)

    def error(self, message: str, request_id: str = "", **fields: Any) -> None:
        self.write("ERROR", message, request_id, **fields)

    def child_line(self, source: str, line: str) -> None:
        """A line a child process wrote on stderr, prefixed with who wrote it (never filtered:
        it is the child's output, as print() output is)."""
        if self.json_format:
            import json

            record = {"timestamp": _timestamp(), "level": "INFO", "message": line}
            self._emit(json.dumps({**record, "source": source}), LEVELS["INFO"], True)
        else:
            self._emit(f"[{escape(source)}] {escape(line)}", 0, False)

    def raw(self, line: str) -> None:
        """A line of the function's own output: one record (runtimes/PROTOCOL.md, "Log
        records"), passed through unchanged, or framed with the level it names."""
        if self._frames is None:
            self._emit(line, 0, False)
            return
        from sor.telemetry import line_level

        level, is_json = line_level(line, json_format=self.json_format)
        self._emit(line, level, is_json)

    def _emit(self, line: str, level: int, is_json: bool) -> None:
        with self._lock:
            if self._frames is not None:
                try:
                    # A record's inner line breaks travel as \r on a line; a frame holds them.
                    self._frames.write(line.replace("\r", "\n") + "\n", level, is_json=is_json)
                    return
                except OSError as e:  # the descriptor broke: the stream still reaches Lambda
                    self._frames = None
                    self.stream.write(f"[WARN]\t{_timestamp()}\t\tsor: telemetry log: {e}\n")
            self.stream.write(line + "\n")
            self.stream.flush()
