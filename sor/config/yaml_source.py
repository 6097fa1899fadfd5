"""YAML text to plain data, keeping the line and column of every node.

PyYAML's composer gives a node tree with marks; this module turns it into dicts, lists and
scalars plus a map from config path (a tuple of keys and indices) to its 1-based (line, col).
Problems of the text itself (syntax, duplicate keys, a top level that is not a mapping) come back
as `Problem`s rather than exceptions, so a caller can report them with every other problem.
"""

from __future__ import annotations

import datetime
from typing import Any

import yaml

from sor.config.rules import PathKey
from sor.config.source import MAX_BYTES, Position, Source, dotted, too_large
from sor.errors import Problem

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# The C parser is several times faster; the pure Python one gives the same nodes and marks.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Limits that no real sor.yml comes near, so that hostile text is refused before it is expanded
# (SPEC: "A config file over 1 MiB, or one whose YAML aliases would expand past a small bound";
# the size is sor.config.source.MAX_BYTES).
MAX_DEPTH = 64  # levels of nesting; a sor.yml needs fewer than ten
MAX_NODES = 100_000  # values once every alias is expanded ("billion laughs" stops here)


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


class _Open:
    """A collection the event scan is inside: where it is, what it holds so far."""

    __slots__ = ("anchor", "index", "is_map", "key", "size", "want_key")

    def __init__(self, is_map: bool, anchor: str | None) -> None:
        self.is_map = is_map
        self.anchor = anchor
        self.want_key = is_map
        self.key: str | int = ""
        self.index = 0
        self.size = 1  # itself, then every value inside it, aliases expanded

    def place(self) -> str | int:
        return self.key if self.is_map else self.index

    def advance(self) -> None:
        """One value of this collection is complete."""
        if self.is_map:
            self.want_key = True
        else:
            self.index += 1


def _limit_problem(text: str, file: str, loader: Any = _Loader) -> Problem | None:
    """The first limit `text` breaks (nesting, expanded size), read from the parser's events,
    which never expand an alias; None when it keeps to them. Syntax errors are left to `parse`.

    libyaml stops at its own nesting limit, in words of its own, while scanning ahead: then the
    pure Python parser (no such limit, slower, only on this error path) finds the place.
    """
    stack: list[_Open] = []
    anchored: dict[str, int] = {}
    total = 0

    def problem(event: Any, why: str) -> Problem:
        places = [entry.place() for entry in stack]
        while places and isinstance(places[-1], int):  # the key above a run of `[0]`s
            places.pop()
        path = dotted(tuple(places))
        return Problem(file, event.start_mark.line + 1, event.start_mark.column + 1, path, why)

    try:
        event: Any
        for event in yaml.parse(text, Loader=loader):
            kind = type(event)
            top = stack[-1] if stack else None
            if kind is yaml.ScalarEvent or kind is yaml.AliasEvent:
                n = 1 if kind is yaml.ScalarEvent else anchored.get(event.anchor, 1)
                if kind is yaml.ScalarEvent and event.anchor:
                    anchored[event.anchor] = 1
                total += n
                if top is not None:
                    top.size += n
                    if top.want_key:
                        top.key, top.want_key = str(event.value or ""), False
                    else:
                        top.advance()
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                total += 1
                if top is not None:
                    top.want_key = False  # a collection as a key is reported by `parse`
                if len(stack) >= MAX_DEPTH:
                    why = f"the file is nested too deeply to read (more than {MAX_DEPTH} levels)"
                    return problem(event, why)
                stack.append(_Open(kind is yaml.MappingStartEvent, event.anchor))
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                done = stack.pop()
                if done.anchor:
                    anchored[done.anchor] = done.size
                if stack:
                    stack[-1].size += done.size
                    stack[-1].advance()
            if total > MAX_NODES:
                why = (
                    f"the file's aliases expand to more than {MAX_NODES} values: a sor.yml "
                    "needs far fewer (is it an alias bomb?)"
                )
                return problem(event, why)
    except yaml.YAMLError:
        if loader is not yaml.SafeLoader:
            return _limit_problem(text, file, yaml.SafeLoader)
        return None  # `parse` reports it, with its place
    return None


def parse(text: str, file: str) -> Source:
    """Parse YAML `text` (named `file` in problems) into a `Source`."""
    source = Source(file)
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) > MAX_BYTES // 4 else 0
    limit = too_large(size, file) if size > MAX_BYTES else _limit_problem(text, file)
    if limit is not None:
        source.problems.append(limit)
        return source
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
