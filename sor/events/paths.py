"""Field paths (``$.detail.id``, ``$.Records[0]``, ``$['detail-type']``) and value expressions.

A value expression is what a declarative mapping uses to fill an attribute: a constant, a path,
a template (``"com.example.{$.detail-type}"``) or ``{path, default, epoch}`` / ``{value}``.
Everything is compiled once into closures so applying a mapping is plain dict work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sor.errors import ConfigError

MISSING: Any = object()
Getter = Callable[[Any], Any]  # returns MISSING when the path is not in the document

_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]")
_TEMPLATE = re.compile(r"\{(\$[^{}]*)\}")


def parse_path(text: str, where: str) -> tuple[str | int, ...]:
    """``$.a[0]['b.c']`` as ``("a", 0, "b.c")``; ConfigError naming ``where`` if malformed."""
    if not text.startswith("$"):
        raise ConfigError(f"{where}: a path starts with '$': {text!r}")
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ConfigError(f"{where}: malformed path {text!r} at character {pos}")
        name, index, quoted1, quoted2 = m.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(next(s for s in (name, quoted1, quoted2) if s is not None))
        pos = m.end()
    return tuple(steps)


def getter(text: str, where: str) -> Getter:
    """A function reading the path ``text`` from a document, MISSING when absent or null."""
    steps = parse_path(text, where)

    def get(doc: Any) -> Any:
        for step in steps:
            if isinstance(step, int):
                if not isinstance(doc, list) or step >= len(doc):
                    return MISSING
            elif not isinstance(doc, dict) or step not in doc:
                return MISSING
            doc = doc[step]
        return MISSING if doc is None else doc

    return get


def _constant(value: Any) -> Getter:
    return lambda _doc: value


def _template(text: str, where: str) -> Getter:
    parts: list[str | Getter] = []
    pos = 0
    for m in _TEMPLATE.finditer(text):
        parts.append(text[pos : m.start()])
        parts.append(getter(m.group(1), where))
        pos = m.end()
    parts.append(text[pos:])

    def render(doc: Any) -> Any:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part(doc)
            if value is MISSING:
                return MISSING
            out.append(_text(value))
        return "".join(out)

    return render


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expression(spec: Any, where: str) -> Getter:
    """Compile a value expression (see the module docstring and docs/cloudevents.md)."""
    if isinstance(spec, str):
        if spec.startswith("$"):
            return getter(spec, where)
        if _TEMPLATE.search(spec):
            return _template(spec, where)
        return _constant(spec)
    if isinstance(spec, dict):
        if set(spec) == {"value"}:
            return _constant(spec["value"])
        if "path" in spec and set(spec) <= {"path", "default", "epoch"}:
            return _path_with_options(spec, where)
        raise ConfigError(f"{where}: expected {{value}} or {{path, default, epoch}}, got {spec}")
    if spec is None or isinstance(spec, (int, float, bool, list)):
        return _constant(spec)
    raise ConfigError(f"{where}: unsupported value {spec!r}")


def _path_with_options(spec: dict[str, Any], where: str) -> Getter:
    from sor.events.fields import epoch_to_rfc3339

    if not isinstance(spec["path"], str):
        raise ConfigError(f"{where}.path: must be a string path such as $.detail.id")
    get = getter(spec["path"], f"{where}.path")
    default = spec.get("default", MISSING)
    epoch = spec.get("epoch")
    if epoch not in (None, "s", "ms"):
        raise ConfigError(f"{where}.epoch: must be 's' or 'ms', got {epoch!r}")
    unit = 1000 if epoch == "ms" else 1

    def read(doc: Any) -> Any:
        value = get(doc)
        if value is MISSING:
            return default
        if epoch is not None:
            return epoch_to_rfc3339(value, unit, f"{where} ({spec['path']})")
        return value

    return read
