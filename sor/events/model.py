"""The values the CloudEvents mapping works with, and the CloudEvents 1.0 validity check.

A CloudEvent is always handled in its structured JSON form (a plain dict): the form the handler
receives, the form middlewares see, and the form the JSON event format puts on the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from sor.errors import EventMappingError

SPECVERSION = "1.0"

# Context attributes the spec defines; every other top-level key is an extension.
REQUIRED = ("id", "source", "type")
OPTIONAL = ("datacontenttype", "dataschema", "subject", "time")
RESERVED = frozenset(("specversion", *REQUIRED, *OPTIONAL, "data", "data_base64"))

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


# Regexes are compiled on first use: most invocations never need them and import time counts.
@cache
def _rfc3339() -> re.Pattern[str]:
    # RFC 3339 date-time (the spec's Timestamp); ranges checked by is_rfc3339.
    return re.compile(
        r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))"
    )


@cache
def _base64() -> re.Pattern[str]:
    return re.compile(r"[A-Za-z0-9+/]*={0,2}")


def is_extension_name(name: str) -> bool:
    """CloudEvents attribute naming: 1-20 lowercase ASCII letters or digits."""
    return 0 < len(name) <= 20 and all(c in _NAME_CHARS for c in name)


@dataclass(frozen=True)
class Record:
    """One CloudEvent of a batch; ``item_id`` is what a partial batch response reports."""

    item_id: str | None
    event: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """What one Lambda event became: the source recognised and one CloudEvent per record.

    ``partial`` is true when the answer is a partial batch response (the source supports it,
    every record has an item id, and ``cloudevents.partial_batch_response`` is on).
    """

    source_kind: str
    records: tuple[Record, ...]
    http: bool = False
    partial: bool = False


@dataclass(frozen=True)
class Outcome:
    """The handler's outcome for one record: a result ``value`` or an ERROR object."""

    ok: bool
    value: Any | None = None
    error: dict[str, Any] | None = None


def is_cloudevent(value: Any) -> bool:
    """True when ``value`` looks like a structured-mode CloudEvent 1.0 (not a full validation)."""
    return (
        isinstance(value, dict)
        and value.get("specversion") == SPECVERSION
        and "id" in value
        and "source" in value
        and "type" in value
    )


def is_rfc3339(text: str) -> bool:
    """True when ``text`` is an RFC 3339 date-time with plausible field ranges."""
    m = _rfc3339().fullmatch(text)
    if m is None:
        return False
    month, day, hour, minute, second = (int(m.group(i)) for i in range(2, 7))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59):
        return False
    if second > 60:  # 60: a leap second
        return False
    return m.group(9) is None or (int(m.group(9)) <= 23 and int(m.group(10)) <= 59)


def validate_cloudevent(ce: Any, where: str = "CloudEvent") -> None:
    """Raise EventMappingError unless ``ce`` is a valid CloudEvents 1.0 event in JSON form."""
    if not isinstance(ce, dict):
        raise EventMappingError(f"{where}: not a JSON object but {type(ce).__name__}")
    if ce.get("specversion") != SPECVERSION:
        raise EventMappingError(
            f"{where}: 'specversion' must be {SPECVERSION!r}, got {ce.get('specversion')!r}"
        )
    for name in REQUIRED:
        value = ce.get(name)
        if not isinstance(value, str) or not value:
            raise EventMappingError(
                f"{where}: required attribute {name!r} missing or not a non-empty string"
            )
    for name in OPTIONAL:
        if name in ce:
            value = ce[name]
            if not isinstance(value, str) or not value:
                raise EventMappingError(f"{where}: attribute {name!r} must be a non-empty string")
    if "time" in ce and not is_rfc3339(ce["time"]):
        raise EventMappingError(f"{where}: attribute 'time' is not RFC 3339: {ce['time']!r}")
    if "data" in ce and "data_base64" in ce:
        raise EventMappingError(f"{where}: has both 'data' and 'data_base64'")
    if "data_base64" in ce:
        b64 = ce["data_base64"]
        if not isinstance(b64, str) or len(b64) % 4 or not _base64().fullmatch(b64):
            raise EventMappingError(f"{where}: 'data_base64' is not base64 text")
    for name, value in ce.items():
        if name in RESERVED:
            continue
        if not is_extension_name(name):
            raise EventMappingError(
                f"{where}: extension name {name!r} must be 1-20 lowercase letters or digits"
            )
        # JSON format: extension values are strings, integers or booleans (null means absent).
        if value is not None and not isinstance(value, (str, int)):
            raise EventMappingError(
                f"{where}: extension {name!r} must be a string, integer or boolean, "
                f"not {type(value).__name__}"
            )
