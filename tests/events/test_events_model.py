"""CloudEvents 1.0 validity (validate_cloudevent) and is_cloudevent."""

from __future__ import annotations

from typing import Any

import pytest

from sor.errors import EventMappingError
from sor.events.model import is_cloudevent, validate_cloudevent, without_nulls

BASE: dict[str, Any] = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"time": "2018-04-05T17:31:00Z"},
        {"time": "1985-04-12T23:20:50.52+01:00"},
        {"time": "1990-12-31T23:59:60z"},
        {"subject": "x", "datacontenttype": "text/plain", "data": "hi"},
        {"dataschema": "https://example.com/s.json", "data": {"a": [1]}},
        {"data_base64": "AP8Q"},
        {"data": None},
        {"comexampleextension1": "value", "n1": 5, "flag": True, "gone": None},
        {"abcdefghij0123456789": "twenty chars"},
    ],
)
def test_valid_events(extra: dict[str, Any]) -> None:
    ce = {**BASE, **extra}
    validate_cloudevent(ce)
    assert is_cloudevent(ce)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"specversion": "0.3"}, "'specversion' must be '1.0'"),
        ({"id": ""}, "required attribute 'id'"),
        ({"source": None}, "required attribute 'source'"),
        ({"type": 5}, "required attribute 'type'"),
        ({"subject": ""}, "attribute 'subject' must be a non-empty string"),
        ({"time": "2018-04-05 17:31:00"}, "'time' is not RFC 3339"),
        ({"time": "2018-13-05T17:31:00Z"}, "'time' is not RFC 3339"),
        ({"time": "2018-04-05T17:31:00"}, "'time' is not RFC 3339"),
        ({"data": 1, "data_base64": "AA=="}, "both 'data' and 'data_base64'"),
        ({"data_base64": "A*=="}, "'data_base64' is not base64"),
        ({"Upper": "x"}, "extension name 'Upper'"),
        ({"with_underscore": "x"}, "extension name 'with_underscore'"),
        ({"abcdefghij0123456789x": "x"}, "extension name 'abcdefghij0123456789x'"),
        ({"ext": {"nested": 1}}, "extension 'ext' must be a string, integer or boolean"),
        ({"ext": 1.5}, "extension 'ext' must be a string, integer or boolean"),
    ],
)
def test_invalid_events_name_the_attribute(change: dict[str, Any], message: str) -> None:
    with pytest.raises(EventMappingError) as info:
        validate_cloudevent({**BASE, **change}, "probe")
    assert info.value.message.startswith("probe: ")
    assert message in info.value.message


def test_missing_attributes_and_non_objects() -> None:
    for name in ("id", "source", "type"):
        ce = dict(BASE)
        del ce[name]
        with pytest.raises(EventMappingError, match=f"'{name}'"):
            validate_cloudevent(ce)
        assert not is_cloudevent(ce)
    with pytest.raises(EventMappingError, match="not a JSON object but list"):
        validate_cloudevent([BASE])
    assert not is_cloudevent("x") and not is_cloudevent({**BASE, "specversion": "0.3"})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("inf"), 1e308, "x"])
def test_epoch_that_is_no_instant_is_a_mapping_error(value: Any) -> None:
    from sor.events.fields import epoch_to_rfc3339

    with pytest.raises(EventMappingError, match="where: not an epoch timestamp"):
        epoch_to_rfc3339(value, 1000, "where")


def test_epoch_timestamps_convert() -> None:
    from sor.events.fields import epoch_to_rfc3339

    assert epoch_to_rfc3339("1545084650987", 1000, "w") == "2018-12-17T22:10:50.987Z"
    assert epoch_to_rfc3339(1545084650.987, 1, "w") == "2018-12-17T22:10:50.987Z"


# JSON format 2.2: "When decoding attributes and a `null` value is encountered, it MUST be treated
# as the equivalent of unset or omitted." The examples are the spec's own (2.3 and 3.2).
SPEC_XML_EXAMPLE: dict[str, Any] = {  # 3.2, the XML example, with its "unsetextension": null
    "specversion": "1.0",
    "type": "com.example.someevent",
    "source": "/mycontext",
    "id": "B234-1234-1234",
    "time": "2018-04-05T17:31:00Z",
    "comexampleextension1": "value",
    "comexampleothervalue": 5,
    "unsetextension": None,
    "datacontenttype": "application/xml",
    "data": '<much wow="xml"/>',
}
SPEC_JSON_EXAMPLE: dict[str, Any] = {  # 3.2, the JSON object example, with its "subject": null
    "specversion": "1.0",
    "type": "com.example.someevent",
    "source": "/mycontext",
    "subject": None,
    "id": "C234-1234-1234",
    "time": "2018-04-05T17:31:00Z",
    "comexampleextension1": "value",
    "comexampleothervalue": 5,
    "datacontenttype": "application/json",
    "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True},
}


@pytest.mark.parametrize("example", [SPEC_XML_EXAMPLE, SPEC_JSON_EXAMPLE], ids=["xml", "json"])
def test_json_format_2_2_null_attributes_are_unset_not_errors(example: dict[str, Any]) -> None:
    validate_cloudevent(example)
    unset = without_nulls(example)
    assert unset == {k: v for k, v in example.items() if v is not None}
    assert None not in unset.values()


@pytest.mark.parametrize("name", ["subject", "time", "datacontenttype", "dataschema", "ext1"])
def test_json_format_2_3_every_optional_attribute_may_be_null(name: str) -> None:
    # 2.3's table: `subject` String (null) -> null, `time` Timestamp (null) -> null.
    ce = {**BASE, name: None}
    validate_cloudevent(ce)
    assert without_nulls(ce) == BASE


def test_json_format_3_1_1_data_null_is_an_explicit_null_payload_and_stays() -> None:
    # 3.1.1: "the `data` member MAY have a value of `null`, representing an explicit `null`
    # payload as distinct from the absence of the `data` member."
    ce = {**BASE, "data": None, "subject": None}
    assert without_nulls(ce) == {**BASE, "data": None}


@pytest.mark.parametrize("name", ["id", "source", "type", "specversion"])
def test_a_null_required_attribute_is_a_missing_one(name: str) -> None:
    with pytest.raises(EventMappingError) as info:
        validate_cloudevent({**BASE, name: None})
    assert info.value.attribute == name
    assert name in info.value.reason


def test_errors_name_the_attribute_and_the_reason_apart_from_the_place() -> None:
    with pytest.raises(EventMappingError) as info:
        validate_cloudevent({**BASE, "time": "yesterday"}, "HTTP binary-mode CloudEvent")
    error = info.value
    assert error.attribute == "time"
    assert error.reason == "attribute 'time' is not RFC 3339: 'yesterday'"
    assert error.message == f"HTTP binary-mode CloudEvent: {error.reason}"
