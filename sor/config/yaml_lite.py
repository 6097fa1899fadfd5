"""The plain YAML that sor.yml files are written in, read without PyYAML.

Importing PyYAML costs ~16 ms of CPU at every cold start (docs/performance.md), more than the
rest of sor's config. This reader takes block mappings of plain keys, block sequences, one-line
flow sequences of plain scalars, comments, and scalars whose YAML 1.1 type cannot be in doubt
(words, paths, durations such as `300ms`, decimal integers and fractions, booleans, `null`,
quoted strings without escapes). Anything else (anchors, aliases, tags, block scalars, values over
several lines, flow mappings, other number notations, an empty value, a duplicate key, a tab)
makes `parse` answer None, and sor.config.yaml_source (PyYAML) reads the file: so its problems are
reported as before. When it answers, its data and positions are exactly PyYAML's
(tests/config/test_yaml_lite.py compares the two over every config of the suite).
"""

from __future__ import annotations

import re

from sor.config.rules import PathKey
from sor.config.source import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*):(?: +|$)")
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]+")
# never a YAML 1.1 number nor a timestamp (0xff is a number)
_DURATION = re.compile(r"(?!0x)[0-9]+(?:\.[0-9]+)?[a-z]+")
_BOOLS = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_NULLS = ("~", "null", "Null", "NULL")
_PLAIN_START = re.compile(r"[A-Za-z_/$]|\.[./]")  # a word or a path: never a number, bool...
_MAX_TEXT = 64 * 1024  # a larger file is no usual sor.yml: PyYAML, with its limits, reads it
_MAX_DEPTH = 32


class _Unsupported(Exception):
    """Outside what this reader takes: PyYAML reads the file."""


def parse(text: str, file: str) -> Source | None:
    """``text`` as a Source, or None when it is not plain YAML of the kind read here."""
    if len(text) > _MAX_TEXT or "\t" in text or "\r" in text or text.startswith("\ufeff"):
        return None
    lines: list[tuple[int, int, str]] = []  # (line number, indentation, content)
    for number, line in enumerate(text.split("\n"), 1):
        if not line.isprintable():  # comments too: PyYAML refuses such a file, or breaks its
            return None  # lines at U+0085, U+2028, U+2029 where this reader would not
        content = line.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        lines.append((number, len(line) - len(content), content.rstrip(" ")))
    if not lines or lines[0][1] != 0:
        return None
    reader = _Reader(lines, Source(file))
    try:
        data, end = reader.block(0, 0, (), 0)
    except _Unsupported:
        return None
    if end != len(lines) or not isinstance(data, dict):
        return None
    reader.source.data = data
    return reader.source


class _Reader:
    def __init__(self, lines: list[tuple[int, int, str]], source: Source) -> None:
        self.lines = lines
        self.source = source

    def block(self, i: int, indent: int, path: PathKey, depth: int) -> tuple[Any, int]:
        """The block collection whose first line is ``lines[i]``, at ``indent``; the value and
        the index of the first line after it."""
        if depth > _MAX_DEPTH:
            raise _Unsupported
        number, _, content = self.lines[i]
        self.source.positions[path] = (number, indent + 1)
        if content == "-" or content.startswith("- "):
            return self._sequence(i, indent, path, depth)
        return self._mapping(i, indent, path, depth)

    def _sequence(self, i: int, indent: int, path: PathKey, depth: int) -> tuple[Any, int]:
        out: list[Any] = []
        while i < len(self.lines) and self.lines[i][1] == indent:
            number, _, content = self.lines[i]
            if not (content == "-" or content.startswith("- ")):
                break
            rest = content[1:].lstrip(" ")
            here = (*path, len(out))
            if not rest or rest.startswith("#"):
                raise _Unsupported  # an item on the lines below, or empty
            inner = indent + len(content) - len(rest)
            if rest.startswith("- ") or _KEY.match(rest):
                # A collection that starts on the item's line: read it as if its line began there.
                self.lines[i] = (number, inner, rest)
                value, i = self.block(i, inner, here, depth + 1)
            else:
                value = self._scalar(rest, number, inner + 1, here)
                i += 1
            out.append(value)
        if i < len(self.lines) and self.lines[i][1] > indent:
            raise _Unsupported  # a value over several lines
        return out, i

    def _mapping(self, i: int, indent: int, path: PathKey, depth: int) -> tuple[Any, int]:
        out: dict[str, Any] = {}
        while i < len(self.lines) and self.lines[i][1] == indent:
            number, _, content = self.lines[i]
            match = _KEY.match(content)
            if match is None:
                if content == "-" or content.startswith("- "):
                    break  # a sequence's next item, when this mapping is inside it
                raise _Unsupported
            key = match.group(1)
            if len(key) > 1000:
                raise _Unsupported  # PyYAML takes no simple key over 1024 characters
            if key in out:
                raise _Unsupported  # PyYAML names the duplicate
            here = (*path, key)
            self.source.key_positions[here] = (number, indent + 1)
            rest = content[match.end() :]
            i += 1
            if rest and not rest.startswith("#"):
                out[key] = self._scalar(rest, number, indent + match.end() + 1, here)
                continue
            if i >= len(self.lines):
                raise _Unsupported  # an empty value: PyYAML places its null
            below = self.lines[i]
            nested = below[1] > indent or (
                below[1] == indent and (below[2] == "-" or below[2].startswith("- "))
            )
            if not nested:
                raise _Unsupported
            out[key], i = self.block(i, below[1], here, depth + 1)
        if i < len(self.lines) and self.lines[i][1] > indent:
            raise _Unsupported
        return out, i

    def _scalar(self, text: str, number: int, col: int, path: PathKey) -> Any:
        """The value written on one line from column ``col``, a comment after it dropped."""
        cut = text.find(" #")
        if cut >= 0:
            text = text[:cut].rstrip(" ")
        self.source.positions[path] = (number, col)
        if text.startswith("["):
            return self._flow(text, number, col, path)
        return _value(text)

    def _flow(self, text: str, number: int, col: int, path: PathKey) -> list[Any]:
        inner = text[1:-1]
        if not text.endswith("]") or any(c in inner for c in "[]{}\"'#"):
            raise _Unsupported
        if not inner.strip(" "):
            return []
        out: list[Any] = []
        start = col + 1
        for item in inner.split(","):
            stripped = item.strip(" ")
            if not stripped or ":" in stripped:  # a flow context reads `:` otherwise
                raise _Unsupported
            at = start + len(item) - len(item.lstrip(" "))
            item_path = (*path, len(out))
            self.source.positions[item_path] = (number, at)
            out.append(_value(stripped))
            start += len(item) + 1
        return out


def _value(text: str) -> Any:
    """A scalar whose YAML 1.1 type (PyYAML's SafeLoader) is beyond doubt; else _Unsupported."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        inner = text[1:-1]
        if text[0] in inner or "\\" in inner:
            raise _Unsupported
        return inner
    if text in _BOOLS:
        return _BOOLS[text]
    if text in _NULLS:
        return None
    if _INT.fullmatch(text) and len(text) < 19:  # no digit limit to meet, no bignum to build
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _DURATION.fullmatch(text):
        return text
    if not _PLAIN_START.match(text) or "#" in text or ": " in text or text.endswith(":"):
        raise _Unsupported
    return text
