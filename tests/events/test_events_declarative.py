"""Declarative mappings (cloudevents.mappings): grammar, matching, batches, errors, schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sor.config.model import CloudEventsSettings
from sor.errors import ConfigError, EventMappingError
from sor.events.batch import answer, to_batch
from sor.events.declarative import compile_mappings
from sor.events.model import Outcome

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data" / "events"
MAIN_SCHEMA = json.loads((ROOT / "schema" / "sor.schema.json").read_text())
# One mapping, as the main schema (the one source of truth) defines `cloudevents.mappings[]`.
SCHEMA = {
    "$schema": MAIN_SCHEMA["$schema"],
    "$defs": MAIN_SCHEMA["$defs"],
    "$ref": "#/$defs/mapping",
}

ORDERS: dict[str, Any] = {
    "name": "orders",
    "match": {
        "$.source": "com.example.orders",
        "$.detail-type": {"in": ["OrderPlaced", "OrderShipped"]},
        "$.detail.orderId": {"exists": True},
    },
    "attributes": {
        "id": "$.id",
        "source": "urn:example:orders",
        "type": "com.example.{$.detail-type}",
        "subject": "order/{$.detail.orderId}",
        "time": "$.time",
        "extensions": {"tenant": "$.detail.tenant", "region": "$.region"},
    },
    "data": "$.detail",
}
ORDER_EVENT = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "OrderPlaced",
    "source": "com.example.orders",
    "account": "123456789012",
    "time": "2024-05-01T12:00:00Z",
    "region": "eu-west-1",
    "resources": [],
    "detail": {"orderId": "42", "tenant": "acme", "total": 9.5},
}


def settings(*mappings: dict[str, Any], partial: bool = False) -> CloudEventsSettings:
    return CloudEventsSettings(partial_batch_response=partial, mappings=tuple(mappings))


def test_declared_mapping_is_tried_before_the_built_in_eventbridge_one() -> None:
    batch = to_batch(ORDER_EVENT, settings(ORDERS))
    assert batch.source_kind == "orders"
    assert batch.records[0].event == {
        "specversion": "1.0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "source": "urn:example:orders",
        "type": "com.example.OrderPlaced",
        "subject": "order/42",
        "time": "2024-05-01T12:00:00Z",
        "tenant": "acme",
        "region": "eu-west-1",
        "datacontenttype": "application/json",
        "data": {"orderId": "42", "tenant": "acme", "total": 9.5},
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"source": "com.example.billing"}, "constant differs"),
        ({"detail-type": "OrderLost"}, "not in the list"),
        ({"detail": {"tenant": "acme"}}, "orderId absent"),
    ],
)
def test_events_the_mapping_does_not_match_fall_through(change: dict[str, Any], why: str) -> None:
    event = {**ORDER_EVENT, **change}
    assert to_batch(event, settings(ORDERS)).source_kind == "eventbridge", why


def test_sqs_queue_mapping_with_records_and_item_ids() -> None:
    mapping = {
        "match": {"$.Records[0].eventSourceARN": {"prefix": "arn:aws:sqs:us-east-2:123456789012:"}},
        "records": "$.Records",
        "item_id": "$.messageId",
        "attributes": {
            "id": "$.messageId",
            "source": "$.eventSourceARN",
            "type": {"value": "com.example.job"},
            "time": {"path": "$.attributes.SentTimestamp", "epoch": "ms"},
            "subject": {"path": "$.messageAttributes.myAttribute.stringValue", "default": "none"},
        },
        "data": "$.body",
    }
    event = json.loads((DATA / "sqs.json").read_text())["event"]
    batch = to_batch(event, settings(mapping, partial=True))
    assert batch.source_kind == "mappings[0]" and batch.partial
    first, second = (r.event for r in batch.records)
    assert first["time"] == "2018-12-17T21:37:29.183Z"
    assert (first["subject"], second["subject"]) == ("myValue", "none")
    assert first["data"] == "Test message." and first["type"] == "com.example.job"
    failed = Outcome(ok=False, error={"errorType": "E", "errorMessage": "m"})
    assert answer(batch, [Outcome(ok=True), failed]) == {
        "batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]
    }


def test_data_defaults_to_the_whole_record_and_null_means_none() -> None:
    whole = {**ORDERS, "data": None}
    del whole["data"]
    assert to_batch(ORDER_EVENT, settings(whole)).records[0].event["data"] == ORDER_EVENT
    nothing = {**ORDERS, "data": None}
    ce = to_batch(ORDER_EVENT, settings(nothing)).records[0].event
    assert "data" not in ce and "datacontenttype" not in ce


def test_literal_dollar_values_and_empty_match() -> None:
    mapping = {
        "match": {},
        "attributes": {"id": {"value": "$not-a-path"}, "source": "/s", "type": "t"},
    }
    ce = to_batch({"anything": 1}, settings(mapping)).records[0].event
    assert ce["id"] == "$not-a-path" and ce["data"] == {"anything": 1}


def test_missing_required_value_names_mapping_and_attribute() -> None:
    event = copy.deepcopy(ORDER_EVENT)
    del event["id"]
    with pytest.raises(
        EventMappingError, match="mapping 'orders': attribute 'id': value not found"
    ):
        to_batch(event, settings(ORDERS))


def test_missing_template_value_makes_the_attribute_absent_or_an_error() -> None:
    mapping = copy.deepcopy(ORDERS)
    mapping["attributes"]["type"] = "com.example.{$.nope}"
    with pytest.raises(EventMappingError, match="attribute 'type'"):
        to_batch(ORDER_EVENT, settings(mapping))
    mapping = copy.deepcopy(ORDERS)
    mapping["attributes"]["subject"] = "x/{$.nope}"
    assert "subject" not in to_batch(ORDER_EVENT, settings(mapping)).records[0].event


def test_records_path_that_is_not_a_list_is_named() -> None:
    mapping = {**ORDERS, "records": "$.detail"}
    with pytest.raises(EventMappingError, match="'records' does not lead to a list"):
        to_batch(ORDER_EVENT, settings(mapping))


def test_missing_item_id_is_named() -> None:
    mapping = {**ORDERS, "item_id": "$.detail.nope"}
    with pytest.raises(EventMappingError, match="item_id: value not found"):
        to_batch(ORDER_EVENT, settings(mapping))


def test_produced_events_are_validated() -> None:
    mapping = copy.deepcopy(ORDERS)
    mapping["attributes"]["extensions"] = {"Tenant": "$.detail.tenant"}
    with pytest.raises(EventMappingError, match="extension name 'Tenant'"):
        to_batch(ORDER_EVENT, settings(mapping))
    mapping = copy.deepcopy(ORDERS)
    mapping["attributes"]["time"] = "$.detail.total"
    with pytest.raises(EventMappingError, match="'time' must be a non-empty string"):
        to_batch(ORDER_EVENT, settings(mapping))


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({**ORDERS, "colour": "red"}, "cloudevents.mappings[0]: unknown key(s) colour"),
        ({**ORDERS, "match": None}, "cloudevents.mappings[0].match: required"),
        ({**ORDERS, "match": {"source": "x"}}, "a path starts with '$'"),
        ({**ORDERS, "match": {"$.a..b": "x"}}, "malformed path '$.a..b'"),
        ({**ORDERS, "match": {"$.a": {"like": "x"}}}, "equals/exists/in/prefix"),
        (
            {**ORDERS, "attributes": {"id": "$.id", "source": "s"}},
            "cloudevents.mappings[0].attributes: missing type",
        ),
        (
            {**ORDERS, "attributes": {**ORDERS["attributes"], "colour": "x"}},
            "unknown attribute(s) colour",
        ),
        (
            {
                **ORDERS,
                "attributes": {**ORDERS["attributes"], "time": {"path": "$.t", "epoch": "h"}},
            },
            "attributes.time.epoch: must be 's' or 'ms'",
        ),
        ({**ORDERS, "records": 3}, "records: must be a path"),
    ],
)
def test_bad_mappings_are_config_errors_naming_the_config_path(
    mapping: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        compile_mappings((mapping,))
    assert message in info.value.message
    with pytest.raises(ConfigError) as info:  # the settings compile them as they are made
        settings(mapping)
    assert message in info.value.message


def test_mappings_are_compiled_when_the_settings_are_made() -> None:
    s = settings(ORDERS)
    assert len(s.compiled) == 1 and s.compiled[0].matches(ORDER_EVENT)
    assert to_batch(ORDER_EVENT, s).source_kind == s.compiled[0].kind


def test_paths_with_brackets_and_indexes() -> None:
    mapping = {
        "match": {"$['detail-type']": "OrderPlaced", "$.resources[0]": {"exists": False}},
        "attributes": {"id": '$["id"]', "source": "/s", "type": "t"},
        "data": "$.detail['orderId']",
    }
    ce = to_batch(ORDER_EVENT, settings(mapping)).records[0].event
    assert ce["id"] == ORDER_EVENT["id"] and ce["data"] == "42"


def test_schema_accepts_the_documented_mappings_and_rejects_bad_ones() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator.validate(ORDERS)
    validator.validate(
        {
            "match": {"$.Records[0].eventSourceARN": {"prefix": "arn:"}},
            "records": "$.Records",
            "item_id": "$.messageId",
            "attributes": {
                "id": "$.messageId",
                "source": "$.eventSourceARN",
                "type": {"value": "com.example.job"},
                "time": {"path": "$.attributes.SentTimestamp", "epoch": "ms"},
            },
            "data": None,
        }
    )
    for bad in (
        {**ORDERS, "colour": 1},
        {k: v for k, v in ORDERS.items() if k != "match"},
        {**ORDERS, "attributes": {"id": "$.id", "source": "s"}},
        {**ORDERS, "attributes": {**ORDERS["attributes"], "extensions": {"Bad_Name": "x"}}},
        {**ORDERS, "match": {"$.a": {"like": 1}}},
        {**ORDERS, "records": "no-dollar"},
        {**ORDERS, "data": "$.a..b"},
        {**ORDERS, "attributes": {**ORDERS["attributes"], "type": "com.{$.a..b}"}},
        {**ORDERS, "match": {"$": {"exists": 1}}},
        {**ORDERS, "item_id": {"path": "$.a", "epoch": "h"}},
        {**ORDERS, "attributes": {**ORDERS["attributes"], "extensions": {"time": "$.t"}}},
    ):
        assert list(validator.iter_errors(bad)), bad


_VALUES: list[Any] = [
    "$",
    "$.a",
    "$['a b'][0]",
    "$\n",
    "$.a..b",
    "$a",
    "$[x]",
    "plain",
    "t-{$.a}",
    "t-{$..a}",
    "t-{$a}-{$.b}",
    "{x}",
    3,
    True,
    None,
    [1],
    {"value": [1]},
    {"path": "$.a", "epoch": "ms", "default": 0},
    {"path": "a"},
    {"path": "$.a", "epoch": "h"},
    {"path": "$.a", "colour": 1},
    {},
]


@pytest.mark.parametrize("value", _VALUES, ids=[repr(v) for v in _VALUES])
def test_what_the_schema_accepts_compiles_and_the_schema_rejects_what_does_not(value: Any) -> None:
    # The same value in every place a path or a value expression can go.
    validator = jsonschema.Draft202012Validator(SCHEMA)
    places: list[dict[str, Any]] = [
        {**ORDERS, "attributes": {**ORDERS["attributes"], "subject": value}},
        {**ORDERS, "data": value},
        {**ORDERS, "item_id": value},
        {**ORDERS, "attributes": {**ORDERS["attributes"], "extensions": {"x": value}}},
    ]
    if isinstance(value, str):
        places += [{**ORDERS, "records": value}, {**ORDERS, "match": {value: 1}}]
    for mapping in places:
        valid = not list(validator.iter_errors(mapping))
        try:
            compile_mappings((mapping,))
        except ConfigError as exc:
            assert not valid, f"the schema accepts {mapping} but it does not compile: {exc}"
