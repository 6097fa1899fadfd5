"""Lambda's telemetry log descriptor (``_LAMBDA_TELEMETRY_LOG_FD``): one frame per log record.

A frame is what AWS's runtime clients (awslambdaric, the Node runtime) write there, big-endian:

    u32 type | u32 payload length | u64 timestamp (microseconds since the epoch) | payload

``type`` is ``0xA55A0000 | level << 2 | 0b10 | text``: level 0 (none) or 1-6 (TRACE, DEBUG,
INFO, WARN, ERROR, FATAL), ``text`` 1 for a text record and 0 for a JSON one. A frame is one log
event however many lines it holds, so a traceback stays whole. Imported only when the descriptor
is configured: nothing here is on the cold-start path otherwise.
"""

from __future__ import annotations

import json
import os
import time

# Level names as the runtime clients and Python's logging spell them: a frame's level bits.
from sor.logs import LEVELS
from sor.values import frozen

FRAME_MAGIC = 0xA55A0000
HEADER_SIZE = 16


def frame_type(level: int, *, is_json: bool) -> int:
    """The frame type of a record at ``level`` (0: none), text or JSON."""
    return FRAME_MAGIC | (level & 0b111) << 2 | 0b10 | (0 if is_json else 1)


def encode(text: str, level: int, *, is_json: bool, micros: int) -> bytes:
    """One whole frame."""
    payload = text.encode("utf-8", "surrogatepass")
    return (
        frame_type(level, is_json=is_json).to_bytes(4, "big")
        + len(payload).to_bytes(4, "big")
        + micros.to_bytes(8, "big")
        + payload
    )


@frozen
class Frame:
    """A frame read back (tests, tools)."""

    type: int
    micros: int
    text: str

    @property
    def level(self) -> int:
        return (self.type >> 2) & 0b111

    @property
    def is_json(self) -> bool:
        return not self.type & 1


def decode(data: bytes) -> tuple[list[Frame], bytes]:
    """The whole frames at the start of ``data``, and the bytes of an unfinished one.

    Raises ValueError at bytes that do not start a frame.
    """
    frames, at = [], 0
    while len(data) - at >= HEADER_SIZE:
        kind = int.from_bytes(data[at : at + 4], "big")
        if kind & 0xFFFF0000 != FRAME_MAGIC:
            raise ValueError(f"not a telemetry frame at byte {at}: type {kind:#010x}")
        size = int.from_bytes(data[at + 4 : at + 8], "big")
        end = at + HEADER_SIZE + size
        if end > len(data):
            break
        micros = int.from_bytes(data[at + 8 : at + 16], "big")
        frames.append(Frame(kind, micros, data[at + HEADER_SIZE : end].decode("utf-8")))
        at = end
    return frames, data[at:]


def line_level(line: str, *, json_format: bool) -> tuple[int, bool]:
    """(level, is_json) of a record a child wrote as one line (runtimes/PROTOCOL.md).

    Under the JSON format a line that is a JSON object is a JSON record at its ``level``; text
    records carry their level as ``[LEVEL]`` first (Python's format, and its error line) or as
    the third tab-separated field after a timestamp (Node's). Other lines have no level.
    """
    if json_format and line.startswith("{"):
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict):
            level = doc.get("level")
            return (LEVELS.get(level.upper(), 0) if isinstance(level, str) else 0), True
    if line.startswith("["):
        end = line.find("]", 1, 16)
        if end > 0 and line[end + 1 : end + 2] in ("\t", " "):
            return _level_of_name(line[1:end]), False
        return 0, False
    parts = line.split("\t", 3)
    if len(parts) == 4 and parts[0][:2].isdigit() and parts[0].endswith("Z"):
        return LEVELS.get(parts[2], 0), False
    return 0, False


def _level_of_name(name: str) -> int:
    """A level name's bits; Python's ``Level 25`` (a custom level) rounds down, as awslambdaric
    rounds it, to a multiple of ten."""
    if name.startswith("Level ") and name[6:].isdigit():
        return _PYTHON_LEVELS[min(50, int(name[6:])) // 10]
    return LEVELS.get(name, 0)


_PYTHON_LEVELS = (0, 2, 3, 4, 5, 6)  # logging's NOTSET, DEBUG, ... CRITICAL, by tens


class FrameSink:
    """Writes frames to the telemetry descriptor, one ``write`` per frame where the pipe allows.

    The descriptor is made non-inheritable: no child of sor writes to it (sor frames their
    lines itself). Callers serialise writes (sor.logs.Log holds its lock).
    """

    def __init__(self, fd: int) -> None:
        os.set_inheritable(fd, False)  # OSError (EBADF) when it is not open
        os.set_blocking(fd, True)
        self.fd = fd

    @classmethod
    def from_value(cls, value: str) -> FrameSink:
        """The sink of the variable's value; ValueError naming what is wrong with it."""
        try:
            fd = int(value)
        except ValueError:
            raise ValueError(f"_LAMBDA_TELEMETRY_LOG_FD={value!r} is not a descriptor") from None
        try:
            return cls(fd)
        except OSError as e:
            raise ValueError(f"_LAMBDA_TELEMETRY_LOG_FD={value!r}: {e.strerror}") from None

    def write(self, text: str, level: int, *, is_json: bool) -> None:
        """One record as one frame; OSError when the descriptor fails."""
        data = memoryview(encode(text, level, is_json=is_json, micros=time.time_ns() // 1000))
        while data:
            data = data[os.write(self.fd, data) :]
