"""Declarative mappings (``cloudevents.mappings``): compiled once, then applied as dict work.

A mapping recognises an event with ``match`` (path -> condition, all must hold, evaluated on the
whole event), optionally splits it into records with ``records`` (a path to a list), and builds
one CloudEvent per record from ``attributes``, ``data`` and ``item_id`` (paths relative to the
record). The grammar is in docs/cloudevents.md and schema/sor.schema.json (#/$defs/mapping).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sor.errors import ConfigError, EventMappingError
from sor.events.model import OPTIONAL, REQUIRED, SPECVERSION, Record
from sor.events.paths import MISSING, Getter, expression, getter

Predicate = Callable[[Any], bool]
_KEYS = frozenset(("name", "match", "records", "attributes", "data", "item_id"))
_ATTRIBUTES = frozenset((*REQUIRED, *OPTIONAL, "extensions"))


@dataclass(frozen=True)
class Compiled:
    """One compiled mapping; ``kind`` is its name, or ``mappings[INDEX]`` when it has none."""

    kind: str
    label: str
    conditions: tuple[tuple[str, Getter, Predicate], ...]
    records: Getter | None
    attributes: tuple[tuple[str, Getter], ...]
    data: Getter | None
    item_id: Getter | None

    def matches(self, event: Any) -> bool:
        """True when every ``match`` condition holds for ``event``."""
        return all(pred(get(event)) for _, get, pred in self.conditions)

    def apply(self, event: Any) -> tuple[Record, ...]:
        """The records of a matching event."""
        if self.records is None:
            return (self._record(event, self.label),)
        items = self.records(event)
        if not isinstance(items, list):
            raise EventMappingError(f"{self.label}: 'records' does not lead to a list in the event")
        return tuple(
            self._record(item, f"{self.label}: record {i}") for i, item in enumerate(items)
        )

    def _record(self, doc: Any, where: str) -> Record:
        ce: dict[str, Any] = {"specversion": SPECVERSION}
        for name, get in self.attributes:
            value = get(doc)
            if value is MISSING:
                if name in REQUIRED:
                    raise EventMappingError(f"{where}: attribute {name!r}: value not found")
                continue
            ce[name] = value
        if self.data is not None:
            data = self.data(doc)
            if data is not MISSING:
                ce.setdefault("datacontenttype", "application/json")
                ce["data"] = data
        item_id = None
        if self.item_id is not None:
            value = self.item_id(doc)
            if value is MISSING:
                raise EventMappingError(f"{where}: item_id: value not found")
            item_id = str(value)
        return Record(item_id, ce)


def _predicate(spec: Any, where: str) -> Predicate:
    if not isinstance(spec, dict):
        return lambda v: v is not MISSING and v == spec
    unknown = set(spec) - {"equals", "exists", "in", "prefix"}
    if unknown or not spec:
        raise ConfigError(f"{where}: a condition is a constant or uses equals/exists/in/prefix")
    preds: list[Predicate] = []
    if "equals" in spec:
        expected = spec["equals"]
        preds.append(lambda v: v is not MISSING and v == expected)
    if "exists" in spec:
        wanted = bool(spec["exists"])
        preds.append(lambda v: (v is not MISSING) == wanted)
    if "in" in spec:
        options = spec["in"]
        if not isinstance(options, list):
            raise ConfigError(f"{where}.in: must be a list")
        preds.append(lambda v: v is not MISSING and v in options)
    if "prefix" in spec:
        prefix = spec["prefix"]
        if not isinstance(prefix, str):
            raise ConfigError(f"{where}.prefix: must be a string")
        preds.append(lambda v: isinstance(v, str) and v.startswith(prefix))
    return lambda v: all(p(v) for p in preds)


def compile_one(spec: Any, index: int) -> Compiled:
    """Compile ``cloudevents.mappings[index]``; ConfigError names the config path."""
    where = f"cloudevents.mappings[{index}]"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a mapping is an object")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = spec.get("name")
    label = f"mapping {name!r}" if name else f"mapping {where}"
    match = spec.get("match")
    if not isinstance(match, dict):
        raise ConfigError(f"{where}.match: required, an object of path: condition")
    conditions = tuple(
        (path, getter(path, f"{where}.match"), _predicate(cond, f"{where}.match.{path}"))
        for path, cond in match.items()
    )
    attrs = spec.get("attributes")
    if not isinstance(attrs, dict):
        raise ConfigError(f"{where}.attributes: required, an object")
    unknown = set(attrs) - _ATTRIBUTES
    if unknown:
        raise ConfigError(f"{where}.attributes: unknown attribute(s) {', '.join(sorted(unknown))}")
    missing = [a for a in REQUIRED if a not in attrs]
    if missing:
        raise ConfigError(f"{where}.attributes: missing {', '.join(missing)}")
    compiled_attrs = [
        (a, expression(attrs[a], f"{where}.attributes.{a}"))
        for a in (*REQUIRED, *OPTIONAL)
        if a in attrs
    ]
    extensions = attrs.get("extensions", {})
    if not isinstance(extensions, dict):
        raise ConfigError(f"{where}.attributes.extensions: must be an object")
    for ext, value in extensions.items():
        compiled_attrs.append((ext, expression(value, f"{where}.attributes.extensions.{ext}")))
    records = spec.get("records")
    if records is not None and not isinstance(records, str):
        raise ConfigError(f"{where}.records: must be a path such as $.items")
    # No `data` key: the whole record is the data; `data: null`: the event has no data.
    data: Getter | None = getter("$", where)
    if "data" in spec:
        data = None if spec["data"] is None else expression(spec["data"], f"{where}.data")
    return Compiled(
        kind=str(name) if name else f"mappings[{index}]",
        label=label,
        conditions=conditions,
        records=None if records is None else getter(records, f"{where}.records"),
        attributes=tuple(compiled_attrs),
        data=data,
        item_id=expression(spec["item_id"], f"{where}.item_id") if "item_id" in spec else None,
    )


def compile_mappings(mappings: tuple[dict[str, Any], ...]) -> tuple[Compiled, ...]:
    """Compile ``cloudevents.mappings``; ConfigError names the config path of a bad one."""
    return tuple(compile_one(spec, i) for i, spec in enumerate(mappings))
