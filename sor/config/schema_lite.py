"""A small JSON Schema (2020-12) validator for the keywords sor's own schemas use.

It exists for cold starts: importing jsonschema costs ~40 ms, more than the rest of `sor run`'s
start-up together (docs/performance.md). It answers only valid, invalid or unsupported; the exact
problems of a config that is not valid still come from jsonschema (sor.config.schema). A schema
using any keyword this module does not know makes every verdict "unsupported", never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sized

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    Verdict = Literal["valid", "invalid", "unsupported"]

# Keywords with no effect on validity (format is an annotation unless a format checker is given).
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
    }
)
_ASSERTIONS = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "required",
        "properties",
        "patternProperties",
        "additionalProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "anyOf",
        "allOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
    }
)
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_VALUES = ("additionalProperties", "propertyNames", "items", "not", "if", "then", "else")


# Bounds on the size of a value: the type of value each applies to, and whether it is a minimum.
_SIZE_BOUNDS: dict[str, tuple[type, bool]] = {
    "minProperties": (dict, True),
    "maxProperties": (dict, False),
    "minItems": (list, True),
    "maxItems": (list, False),
    "minLength": (str, True),
    "maxLength": (str, False),
}


class _Unsupported(Exception):
    """The schema needs something this validator does not implement."""


def unsupported_keywords(schema: Any) -> set[str]:
    """Every keyword of ``schema`` (and its subschemas) this validator does not know."""
    return {key for key in _keywords(schema) if key not in _ANNOTATIONS | _ASSERTIONS}


def verdict(schema: Mapping[str, Any], instance: Any) -> Verdict:
    """Whether ``instance`` is valid against ``schema``; "unsupported" when it cannot tell."""
    if unsupported_keywords(schema):
        return "unsupported"
    try:
        return "valid" if _Checker(schema).valid(schema, instance) else "invalid"
    except _Unsupported:
        return "unsupported"


def _keywords(schema: Any) -> Iterator[str]:
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        yield "<not a schema>"
        return
    for key, value in schema.items():
        yield key
        if key in _SCHEMA_LISTS and isinstance(value, list):
            for sub in value:
                yield from _keywords(sub)
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            for sub in value.values():
                yield from _keywords(sub)
        elif key in _SCHEMA_VALUES:
            yield from _keywords(value)


class _Checker:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def valid(self, schema: Any, value: Any) -> bool:
        if schema is True:
            return True
        if schema is False:
            return False
        return all(self._keyword(key, arg, schema, value) for key, arg in schema.items())

    def _keyword(self, key: str, arg: Any, schema: Mapping[str, Any], value: Any) -> bool:
        if key in _ANNOTATIONS:
            return True
        if key == "$ref":
            return self.valid(self._resolve(arg), value)
        if key == "type":
            return any(_is_type(value, t) for t in (arg if isinstance(arg, list) else [arg]))
        if key == "enum":
            return any(_equal(value, choice) for choice in arg)
        if key == "const":
            return _equal(value, arg)
        if key == "anyOf":
            return any(self.valid(sub, value) for sub in arg)
        if key == "allOf":
            return all(self.valid(sub, value) for sub in arg)
        if key == "oneOf":
            return sum(1 for sub in arg if self.valid(sub, value)) == 1
        if key == "not":
            return not self.valid(arg, value)
        if key == "if":
            branch = "then" if self.valid(arg, value) else "else"
            return self.valid(schema.get(branch, True), value)
        if key in ("then", "else"):
            return True  # applied by "if"; without an "if" they do nothing
        if key in _SIZE_BOUNDS:
            sized, at_least = _SIZE_BOUNDS[key]
            if not isinstance(value, sized):
                return True
            size = len(value) if isinstance(value, Sized) else 0
            return bool(size >= arg) if at_least else bool(size <= arg)
        if isinstance(value, dict):
            return self._object(key, arg, schema, value)
        if isinstance(value, list):
            return self._array(key, arg, value)
        if isinstance(value, str):
            return self._string(key, arg, value)
        if _is_type(value, "number"):
            return self._number(key, arg, value)
        return True  # every other keyword ignores values of other types

    def _object(self, key: str, arg: Any, schema: Mapping[str, Any], value: dict[Any, Any]) -> bool:
        if key == "required":
            return all(name in value for name in arg)
        if key == "properties":
            return all(self.valid(sub, value[name]) for name, sub in arg.items() if name in value)
        if key == "patternProperties":
            return all(
                self.valid(sub, item)
                for pattern, sub in arg.items()
                for name, item in value.items()
                if re.search(pattern, name)
            )
        if key == "additionalProperties":
            named = schema.get("properties", {})
            patterns = list(schema.get("patternProperties", {}))
            return all(
                self.valid(arg, item)
                for name, item in value.items()
                if name not in named and not any(re.search(p, name) for p in patterns)
            )
        if key == "propertyNames":
            return all(self.valid(arg, name) for name in value)
        return True

    def _array(self, key: str, arg: Any, value: list[Any]) -> bool:
        if key == "items":
            return all(self.valid(arg, item) for item in value)
        if key == "uniqueItems":
            return not arg or not any(
                _equal(a, b) for i, a in enumerate(value) for b in value[i + 1 :]
            )
        return True

    @staticmethod
    def _string(key: str, arg: Any, value: str) -> bool:
        if key == "pattern":
            return re.search(arg, value) is not None
        return True

    @staticmethod
    def _number(key: str, arg: Any, value: float) -> bool:
        if key == "minimum":
            return bool(value >= arg)
        if key == "maximum":
            return bool(value <= arg)
        if key == "exclusiveMinimum":
            return bool(value > arg)
        if key == "exclusiveMaximum":
            return bool(value < arg)
        return True

    def _resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _Unsupported(f"$ref {ref!r}")  # only references inside the same document
        node: Any = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise _Unsupported(f"$ref {ref!r} does not resolve")
            node = node[part]
        return node


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False  # true and false are not numbers in JSON
    if name == "number":
        return isinstance(value, (int, float))
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise _Unsupported(f"type {name!r}")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, containers compare element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return False
    return bool(a == b)
