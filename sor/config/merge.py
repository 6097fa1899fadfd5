"""Merging the files of a config: mappings key by key, lists and scalars replaced; and which
file each merged value came from, so that problems and origins point at the right file.
"""

from __future__ import annotations

from collections.abc import Sequence

from sor.config.rules import PathKey
from sor.errors import Problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:  # yaml is imported when a file is parsed, not with this module (cold start)
    from sor.config.source import Source


class Merged:
    """The files of a config merged in order; places problems in the right file."""

    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources
        self.data: dict[str, Any] = {}
        for source in sources:
            self.data = merge(self.data, source.data)

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        """A problem placed in the file whose node at `path` (or its nearest ancestor) the merge
        kept: never in an earlier file whose list a later one replaced."""
        for n in range(len(path), -1, -1):
            source = supplier(self.sources, path[:n])
            if source is not None:
                return source.problem(path, message, key=key)
        from sor.config.source import dotted

        return Problem("<config>", 1, 1, dotted(path), message)


def merge(base: Any, over: Any) -> Any:
    """`over` on top of `base`: mappings merge key by key, anything else (lists too) replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return over


_ABSENT: Any = object()


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


def supplier(sources: Sequence[Source], path: PathKey) -> Source | None:
    """The file the merged node at `path` comes from, or None when no file's node survived the
    merge (mappings merge key by key, anything else replaces, as `merge` does): an
    item of a list that a later file replaced is not the merged item, even at the same index."""
    live: list[tuple[Source, Any]] = [(s, s.data) for s in sources]
    for part in path:
        live = [(s, child) for s, node in live if (child := _child(node, part)) is not _ABSENT]
        # The last node replaces the ones before it, unless they are mappings in a row to it.
        start = len(live) - 1
        while (
            start > 0 and isinstance(live[start][1], dict) and isinstance(live[start - 1][1], dict)
        ):
            start -= 1
        live = live[max(start, 0) :]
    return live[-1][0] if live else None
