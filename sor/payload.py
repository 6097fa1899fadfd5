"""JSON payloads as sor passes them on: the bytes that came, where sor need not look inside;
compact standard JSON, where it must encode what it changed.

Events reach a language runtime as the bytes Lambda sent (a number past double range, a lone
surrogate escape, key order: all as they were), and results leave as the bytes the runtime
wrote. Only middlewares, the cloudevent signature and `_debugProxy` make sor decode a payload;
what it then encodes is standard JSON (no NaN or Infinity) that every parser reads.
"""

from __future__ import annotations

import json
import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class RawJson:
    """JSON text that sor passes on unread. (A plain class, as the other small values made on
    `sor run`'s path: a dataclass costs a generated method each at every cold start.)"""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text

    def value(self) -> Any:
        """The decoded value; ValueError when the text is not JSON or is nested too deeply."""
        return decode(self.text)

    def one_line(self) -> bytes:
        """The text on one line: CR and LF in valid JSON are only white space between tokens."""
        return self.text.replace(b"\n", b" ").replace(b"\r", b" ")


def decode(data: bytes | str) -> Any:
    """The JSON value of ``data``; ValueError when it is not JSON or is nested too deeply."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def encode(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON that every parser reads.

    NaN and infinities (which Python's parser reads from ``1e400``) become null, as in
    JavaScript; a lone surrogate, which cannot be UTF-8, is sent escaped (the same JSON value).
    Raises ValueError, TypeError or RecursionError for what cannot be JSON at all.
    """
    if isinstance(value, RawJson):
        return value.one_line()
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(json.loads(text), separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
