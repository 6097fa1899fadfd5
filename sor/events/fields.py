"""Small helpers shared by the mappings: required fields, timestamps, payload bodies."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sor.errors import EventMappingError


def need(obj: Any, key: str, where: str) -> Any:
    """``obj[key]``, or an EventMappingError naming ``where.key`` when it is missing or null."""
    if not isinstance(obj, dict):
        raise EventMappingError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    value = obj.get(key)
    if value is None:
        raise EventMappingError(f"{where}: missing field {key!r}")
    return value


def need_str(obj: Any, key: str, where: str) -> str:
    """A required non-empty string field."""
    value = need(obj, key, where)
    if not isinstance(value, str) or not value:
        raise EventMappingError(f"{where}: field {key!r} must be a non-empty string")
    return value


def need_obj(obj: Any, key: str, where: str) -> dict[str, Any]:
    """A required JSON object field."""
    value = need(obj, key, where)
    if not isinstance(value, dict):
        raise EventMappingError(f"{where}: field {key!r} must be a JSON object")
    return value


def new_id() -> str:
    """A fresh CloudEvent id for events whose source has none (and no request id was given)."""
    import uuid  # lazy: rarely needed, and not free to import

    return str(uuid.uuid4())


def epoch_to_rfc3339(value: Any, unit: float, where: str) -> str:
    """An epoch timestamp (seconds when ``unit`` is 1, milliseconds when 1000) as RFC 3339 UTC.

    Kept to millisecond precision, which is what every AWS source provides.
    """
    try:
        # nan and inf (the strings "nan", "inf" and JSON's huge numbers) are no instant in time
        millis = round(float(value) * 1000 / unit)
    except (TypeError, ValueError, OverflowError):
        raise EventMappingError(f"{where}: not an epoch timestamp: {value!r}") from None
    # Plain arithmetic instead of datetime: this runs once per record on the hot path.
    seconds, ms = divmod(millis, 1000)
    days, rest = divmod(seconds, 86400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    year, month, day = _civil_from_days(days)
    if not 1 <= year <= 9999:
        raise EventMappingError(f"{where}: epoch timestamp out of range: {value!r}")
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def b64decode(text: Any, where: str) -> bytes:
    """Strict base64 decoding with an error naming the field."""
    if not isinstance(text, str):
        raise EventMappingError(f"{where}: expected base64 text, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EventMappingError(f"{where}: not valid base64") from None


def is_json_type(content_type: str) -> bool:
    """True for application/json, text/json and any ``+json`` media type."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def is_text_type(content_type: str) -> bool:
    """Media types whose body is text and goes into ``data`` as a string."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in (
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/javascript",
    )


def payload_fields(raw: bytes, b64: str | None, content_type: str | None) -> dict[str, Any]:
    """The ``datacontenttype`` and ``data``/``data_base64`` of a payload.

    With a known content type, JSON types are parsed (an error if invalid), text types become a
    string and anything else is ``data_base64``. Without one, the payload is sniffed: JSON when it
    parses, text when it is UTF-8, bytes otherwise. ``b64`` is the payload's base64 text when the
    source already had it (saves re-encoding).
    """
    if not raw:
        return {"datacontenttype": content_type} if content_type else {}
    if content_type is not None:
        if is_json_type(content_type):
            try:
                return {"datacontenttype": content_type, "data": json.loads(raw)}
            except ValueError:
                raise EventMappingError(
                    f"payload: not valid JSON although its content type is {content_type}"
                ) from None
        if is_text_type(content_type):
            try:
                return {"datacontenttype": content_type, "data": raw.decode("utf-8")}
            except UnicodeDecodeError:
                pass
        return {"datacontenttype": content_type, "data_base64": b64 or _b64(raw)}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"datacontenttype": "application/octet-stream", "data_base64": b64 or _b64(raw)}
    parsed = parse_json_text(text)
    if parsed is not _NOT_JSON:
        return {"datacontenttype": "application/json", "data": parsed}
    return {"datacontenttype": "text/plain", "data": text}


_NOT_JSON: Any = object()


def parse_json_text(text: str) -> Any:
    """``json.loads(text)`` for texts that look like a JSON object or array, else _NOT_JSON.

    Only objects and arrays count: a bare ``42`` or ``true`` in a queue is more likely text.
    """
    head = text.lstrip()[:1]
    if head not in ("{", "["):
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def not_json(value: Any) -> bool:
    """True when ``value`` is the marker parse_json_text returns for non-JSON text."""
    return value is _NOT_JSON


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
