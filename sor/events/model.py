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
    every record has an item id, and ``cloudevents.partial_batch_response`` is on). ``fifo`` is
    true for the messages of an SQS FIFO queue: in a partial batch response, nothing after the
    first failure runs, and it and every later record are reported.
    """

    source_kind: str
    records: tuple[Record, ...]
    http: bool = False
    partial: bool = False
    fifo: bool = False
    multi_value: bool = False  # an ALB with multi-value headers: answers use multiValueHeaders


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


def without_nulls(ce: dict[str, Any]) -> dict[str, Any]:
    """``ce`` with its ``null`` attributes removed (JSON format 2.2: null means unset).

    ``data: null`` stays: it is an explicit null payload, distinct from no data (3.1.1).
    """
    if None not in ce.values():  # the common case, checked at C speed
        return ce
    return {name: value for name, value in ce.items() if value is not None or name == "data"}


def _invalid(where: str, attribute: str | None, reason: str) -> EventMappingError:
    return EventMappingError(f"{where}: {reason}", attribute=attribute, reason=reason)


def validate_cloudevent(ce: Any, where: str = "CloudEvent") -> None:
    """Raise EventMappingError unless ``ce`` is a valid CloudEvents 1.0 event in JSON form.

    A ``null`` attribute is an unset one (JSON format 2.2): never an error by itself. The error
    names the attribute at fault (``attribute``) and what is wrong with it (``reason``).
    """
    if not isinstance(ce, dict):
        raise _invalid(where, None, f"not a JSON object but {type(ce).__name__}")
    if ce.get("specversion") != SPECVERSION:
        reason = f"'specversion' must be {SPECVERSION!r}, got {ce.get('specversion')!r}"
        raise _invalid(where, "specversion", reason)
    for name in REQUIRED:
        value = ce.get(name)
        if not isinstance(value, str) or not value:
            reason = f"required attribute {name!r} missing or not a non-empty string"
            raise _invalid(where, name, reason)
    for name in OPTIONAL:
        value = ce.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise _invalid(where, name, f"attribute {name!r} must be a non-empty string")
    time = ce.get("time")
    if time is not None and not is_rfc3339(time):
        raise _invalid(where, "time", f"attribute 'time' is not RFC 3339: {time!r}")
    b64 = ce.get("data_base64")
    if "data" in ce and b64 is not None:
        raise _invalid(where, "data_base64", "has both 'data' and 'data_base64'")
    if b64 is not None and (
        not isinstance(b64, str) or len(b64) % 4 or not _base64().fullmatch(b64)
    ):
        raise _invalid(where, "data_base64", "'data_base64' is not base64 text")
    for name, value in ce.items():
        if name in RESERVED:
            continue
        if not is_extension_name(name):
            reason = f"extension name {name!r} must be 1-20 lowercase letters or digits"
            raise _invalid(where, name, reason)
        # JSON format 2.2: extension values are strings, integers or booleans (null: unset).
        if value is not None and not isinstance(value, (str, int)):
            reason = (
                f"extension {name!r} must be a string, integer or boolean, "
                f"not {type(value).__name__}"
            )
            raise _invalid(where, name, reason)
