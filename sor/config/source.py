"""One parsed sor.yml: its data, where each node sits, and the problems of the text itself;
made by sor.config.yaml_lite or, for what that one does not read, sor.config.yaml_source."""

from __future__ import annotations

from sor.config.rules import PathKey
from sor.errors import Problem
from sor.values import field, mutable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Position = tuple[int, int]
MAX_BYTES = 1 << 20  # a sor.yml over 1 MiB is refused unread (SPEC)


@mutable
class Source:
    """One parsed file: its data, where each node sits, and the problems of the text itself."""

    file: str
    data: Any = None
    positions: dict[PathKey, Position] = field(default_factory=dict)
    key_positions: dict[PathKey, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: PathKey, *, key: bool = False) -> Position:
        """Line and column of the node at `path` (of its key with `key=True`), else its nearest
        ancestor's, else the start of the file."""
        if key and path in self.key_positions:
            return self.key_positions[path]
        for n in range(len(path), -1, -1):
            found = self.positions.get(path[:n])
            if found is not None:
                return found
        return (1, 1)

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        """A Problem at the node of `path`."""
        line, col = self.where(path, key=key)
        return Problem(self.file, line, col, dotted(path), message)


def dotted(path: PathKey) -> str:
    """`("middlewares", 2, "timeout")` as `middlewares[2].timeout`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def too_large(size: int, file: str) -> Problem:
    """The problem of a file over MAX_BYTES (found before reading it whole)."""
    return Problem(
        file, 1, 1, "", f"the file is {size} bytes: a sor.yml may be at most {MAX_BYTES} (1 MiB)"
    )
