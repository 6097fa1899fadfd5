"""The JSON Schema of sor.yml and the checks beyond it, reported as `Problem`s.

jsonschema is imported only when a file is validated, so importing this module stays cheap; with
``quick=True`` (the `sor run` path) sor.config.schema_lite answers first and jsonschema is imported
only when the file is not valid, to list its exact problems. The schema's own messages are rewritten
into sentences a user can act on, and every problem points at the line and column of the offending
key or value.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

from sor.config.rules import PathKey, semantic_problems
from sor.config.source import Source, dotted
from sor.errors import Problem
from sor.resources import data_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_FILE = ("schema", "sor.schema.json")

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "empty",
}


def schema_path() -> str:
    """Where the schema file lives."""
    return data_file(*SCHEMA_FILE)


@functools.cache
def schema_document() -> dict[str, Any]:
    """The schema, parsed once."""
    with open(schema_path(), encoding="utf-8") as fh:
        document: dict[str, Any] = json.load(fh)
    return document


@functools.cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema_document())


def check(source: Source, *, quick: bool = False) -> list[Problem]:
    """Every problem of one parsed file: its text, the schema, and the rules beyond the schema.

    ``quick``: skip jsonschema when sor.config.schema_lite finds the data valid (same problems).
    """
    if source.data is None:  # nothing to check beyond the text's own problems
        return sorted(source.problems, key=_order)
    rules = semantic_problems(source.data, source)
    covered = {p.path for p in rules}
    found = [p for p in schema_problems(source.data, source, quick=quick) if p.path not in covered]
    return sorted([*source.problems, *found, *rules], key=_order)


def schema_problems(data: Any, source: Source, *, quick: bool = False) -> list[Problem]:
    """The schema's verdict on `data`, as problems placed in `source`."""
    try:
        if quick:
            from sor.config.schema_lite import verdict

            if verdict(schema_document(), data) == "valid":
                return []
        out: list[Problem] = []
        for error in _validator().iter_errors(data):
            out.extend(_translate(error, source))
    except RecursionError:  # both validators recurse once per level of nesting
        path = _too_deep(data)
        return [
            source.problem(
                path, f"is nested too deeply to be checked (more than {_MAX_DEPTH} levels)"
            )
        ]
    return out


_MAX_DEPTH = 100  # levels of nesting that are certainly a mistake in sor.yml


def _too_deep(data: Any) -> PathKey:
    """Where nesting runs past _MAX_DEPTH: the key that holds the deep value (else the top)."""
    stack: list[tuple[PathKey, Any]] = [((), data)]
    while stack:
        path, node = stack.pop()
        if len(path) >= _MAX_DEPTH:
            # Name the mapping key above the run of nesting, not a hundred `[0]`s.
            keys = [i for i, part in enumerate(path[:_SHOWN]) if isinstance(part, str)]
            return path[: keys[-1] + 1] if keys else path[:1]
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        stack.extend(((*path, key), value) for key, value in items)
    return ()


_SHOWN = 8  # at most this many levels of a too-deep path are named


def _order(problem: Problem) -> tuple[str, int, int]:
    return (problem.file, problem.line, problem.col)


def _translate(error: ValidationError, source: Source) -> Iterator[Problem]:
    path: PathKey = tuple(error.absolute_path)
    value: Any = error.instance
    kind = error.validator
    schema: Any = error.schema
    expected: Any = error.validator_value
    if _is_duration(schema):
        yield source.problem(path, _duration_message(value))
    elif kind in ("anyOf", "oneOf"):
        branch = _matching_branch(error)
        if branch is None:
            yield source.problem(path, f"{_describe(value)} is not valid here: {error.message}")
        else:
            for sub in branch:
                yield from _translate(sub, source)
    elif kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        for key in value:
            if key not in allowed:
                yield source.problem((*path, key), _unknown_key(key, allowed), key=True)
    elif kind == "required":
        # jsonschema reports each missing key as its own error, all with the whole list as
        # validator_value: only the key this error names is reported, once.
        missing = [key for key in expected if key not in value]
        named = [key for key in missing if error.message.startswith(f"{key!r} ")] or missing[:1]
        for key in named:
            hint = " (write `version: 1` at the top of the file)" if key == "version" else ""
            yield source.problem(path, f"missing required key '{key}'{hint}")
    elif kind == "pattern":
        yield source.problem(path, _pattern_message(error))
    elif kind == "type":
        wanted = _TYPE_WORDS.get(str(expected), str(expected))
        yield source.problem(path, f"must be {wanted}, not {_describe(value)}")
    elif kind == "enum":
        yield source.problem(path, _enum_message(value, list(expected), path))
    elif kind == "const" and path == ("version",):
        yield source.problem(
            path, f"unsupported version {value!r}: this sor reads version 1 (write `version: 1`)"
        )
    elif kind == "minItems" or kind == "minLength":
        yield source.problem(path, "must not be empty")
    elif kind == "uniqueItems":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                yield source.problem((*path, i), f"{_describe(item)} is listed twice")
            seen.append(item)
    else:
        yield source.problem(path, error.message)


def _pattern_message(error: ValidationError) -> str:
    """What the value should look like, in the schema's words, never the raw expression."""
    steps = list(error.absolute_schema_path)
    is_key = len(steps) >= 2 and steps[-2] == "propertyNames"
    what = _description(error.schema)
    if what is None and is_key:  # {pattern} under propertyNames: its object says what fits
        what = _description(_schema_at(steps[:-2]))
    subject = f"key {error.instance!r}" if is_key else _describe(error.instance)
    if what is None:
        return f"{subject} does not have the form expected here"
    return f"{subject} is not valid here: {what}"


def _description(schema: Any) -> str | None:
    text = schema.get("description") if isinstance(schema, dict) else None
    return text if isinstance(text, str) and text else None


def _schema_at(steps: list[Any]) -> Any:
    """The subschema at an absolute schema path (local $refs followed); None when lost."""
    document = schema_document()
    node: Any = document
    try:
        for step in steps:
            while isinstance(node, dict) and step not in node and "$ref" in node:
                node = document["$defs"][str(node["$ref"]).removeprefix("#/$defs/")]
            node = node[step]
    except (KeyError, IndexError, TypeError):
        return None
    return node


def _is_duration(schema: Any) -> bool:
    return isinstance(schema, dict) and schema == schema_document()["$defs"]["duration"]


def _duration_message(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"duration {value} must be more than 0 seconds"
    return (
        f"{_describe(value)} is not a duration: use a number of seconds (0.5) or a number "
        "with a unit: 250ms, 2s, 1m"
    )


def _matching_branch(error: ValidationError) -> list[ValidationError] | None:
    """The errors of the one anyOf/oneOf branch whose type fits the value, if exactly one does."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [errs for errs in branches.values() if not any(_mismatch(e) for e in errs)]
    return fitting[0] if len(fitting) == 1 else None


def _mismatch(error: ValidationError) -> bool:
    """True when `error` says the value has the wrong type for its branch altogether."""
    if error.relative_path:
        return False
    if error.validator == "type":
        return True
    if error.validator in ("anyOf", "oneOf"):
        return _matching_branch(error) is None and all(_mismatch(e) for e in error.context or ())
    return False


def _unknown_key(key: str, allowed: list[str]) -> str:
    import difflib  # only a config with a problem pays for it (~1 ms at every cold start)

    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}': did you mean '{close[0]}'?"
    return f"unknown key '{key}': allowed keys are {', '.join(allowed)}"


def _enum_message(value: Any, choices: list[Any], path: PathKey) -> str:
    listed = ", ".join(str(c) for c in choices)
    what = "value"
    if path and isinstance(path[-1], str):
        what = path[-1]
    elif len(path) > 1 and isinstance(path[-2], str):  # hooks[2]: a hook
        what = path[-2].removesuffix("s")
    head = f"unknown {what} {_describe(value)}: use one of {listed}"
    if isinstance(value, str):
        import difflib

        close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
        if close:
            return f"{head} (did you mean '{close[0]}'?)"
    return head


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "an empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return str(value)


__all__ = ["check", "dotted", "schema_document", "schema_path", "schema_problems"]
