"""CloudEvents 1.0 validity (validate_cloudevent) and is_cloudevent."""

from __future__ import annotations

from typing import Any

import pytest

from sor.errors import EventMappingError
from sor.events.model import is_cloudevent, validate_cloudevent

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
