"""YAML text to plain data, keeping the line and column of every node.

PyYAML's composer gives a node tree with marks; this module turns it into dicts, lists and
scalars plus a map from config path (a tuple of keys and indices) to its 1-based (line, col).
Problems of the text itself (syntax, duplicate keys, a top level that is not a mapping) come back
as `Problem`s rather than exceptions, so a caller can report them with every other problem.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import yaml

from sor.errors import Problem
from sor.rules import PathKey as PathKey  # re-exported: sor.schema imports it from here

Position = tuple[int, int]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# The C parser is several times faster; the pure Python one gives the same nodes and marks.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
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


def _pos(node: yaml.Node) -> Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _UnreadableValue(Exception):
    """A scalar PyYAML cannot turn into a value; ends the parse like a syntax error."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Builder:
    def __init__(self, source: Source, loader: Any) -> None:
        self.source = source
        self.loader = loader

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.source.positions[path] = _pos(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            value = self.loader.construct_object(node, deep=True)
        except ValueError as exc:  # an integer beyond Python's digit limit, say
            why = str(exc).split(";")[0]  # not Python's advice on sys.set_int_max_str_digits
            message = f"YAML error: the value cannot be read: {why}"
            raise _UnreadableValue(
                Problem(self.source.file, *_pos(node), dotted(path), message)
            ) from None
        # Timestamps and binary have no JSON form: keep the text so the schema names the value.
        if isinstance(value, (datetime.date, bytes)):
            return str(node.value)
        return value

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        seen: dict[str, Position] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in seen:
                line, col = seen[key]
                self.source.problems.append(
                    Problem(
                        self.source.file,
                        *_pos(key_node),
                        dotted((*path, key)),
                        f"duplicate key '{key}' (first at line {line}, column {col})",
                    )
                )
            seen[key] = _pos(key_node)
        # `<<` merge keys: PyYAML flattens them in place, own keys after merged ones (they win).
        self.loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path, report=False)
            if key is None:
                continue
            here = (*path, key)
            self.source.key_positions[here] = _pos(key_node)
            out[key] = self.build(value_node, here)
        return out

    def _key(self, node: yaml.Node, path: PathKey, *, report: bool = True) -> str | None:
        # Keys are read as their text: YAML 1.1 would turn `on:` or `yes:` into booleans.
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        if report:
            self.source.problems.append(
                Problem(self.source.file, *_pos(node), dotted(path), "a key must be a plain string")
            )
        return None


def parse(text: str, file: str) -> Source:
    """Parse YAML `text` (named `file` in problems) into a `Source`."""
    source = Source(file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            source.problems.append(
                Problem(file, 1, 1, "", "the file is empty: it needs at least `version: 1`")
            )
            return source
        if not isinstance(node, yaml.MappingNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
            source.problems.append(
                Problem(
                    file, *_pos(node), "", f"the top level must be a mapping of keys, not {kind}"
                )
            )
            return source
        source.data = _Builder(source, loader).build(node, ())
    except _UnreadableValue as exc:
        source.problems.append(exc.problem)
        source.data = None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = ": ".join(p for p in (exc.context, exc.problem) if p)
        source.problems.append(Problem(file, line, col, "", f"YAML syntax error: {what}"))
        source.data = None
    except yaml.reader.ReaderError as exc:  # bad characters: an offset, not a mark
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        message = f"YAML error: character {char!r} is not allowed in YAML ({exc.reason})"
        source.problems.append(Problem(file, line, col, "", message))
        source.data = None
    except yaml.YAMLError as exc:
        source.problems.append(Problem(file, 1, 1, "", f"YAML error: {exc}"))
        source.data = None
    except RecursionError:  # a config is a few levels deep: this is garbage or an attack
        source.problems.append(Problem(file, 1, 1, "", "the file is nested too deeply to read"))
        source.data = None
    finally:
        loader.dispose()
    return source
