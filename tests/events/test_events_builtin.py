"""Golden tests: AWS sample events (tests/data/events, each citing its AWS page) to CloudEvents."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sor.config.model import CloudEventsSettings
from sor.errors import EventMappingError
from sor.events.batch import to_batch
from sor.events.model import validate_cloudevent

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
SETTINGS = CloudEventsSettings()


def sample(name: str) -> dict[str, Any]:
    doc = json.loads((DATA / name).read_text())
    assert doc["_source"].startswith("https://")
    return doc


def test_every_sample_cites_its_page() -> None:
    for path in DATA.glob("*.json"):
        assert json.loads(path.read_text())["_source"].startswith("https://"), path.name


def test_s3_attribute_by_attribute_as_the_adapter_table_says() -> None:
    event = sample("s3_put.json")["event"]
    batch = to_batch(event, SETTINGS)
    assert batch.source_kind == "s3" and not batch.http and not batch.partial
    (record,) = batch.records
    ce = record.event
    rec = event["Records"][0]
    # | `id` | "responseElements.x-amz-request-id" + `.` + "responseElements.x-amz-id-2" |
    assert ce["id"] == (
        "D82B88E5F771F645.vlR7PnpV2Ce81l0PRw6jlUpck7Jo5ZsQjryTjKlc5aLWGVHPZLj5NeC6qMa0emYBDXOo6QBU0Wo="
    )
    # | `source` | "eventSource" value + `.` + "awsRegion" value + `.` + "s3.buckets.name" value |
    assert ce["source"] == "aws:s3.us-east-2.amzn-s3-demo-bucket"
    # | `specversion` | `1.0` |
    assert ce["specversion"] == "1.0"
    # | `type` | `com.amazonaws.s3.` + "eventName" value |
    assert ce["type"] == "com.amazonaws.s3.ObjectCreated:Put"
    # | `datacontenttype` | S3 event type (e.g. `application/json`) |
    assert ce["datacontenttype"] == "application/json"
    # | `dataschema` | Omit |
    assert "dataschema" not in ce
    # | `subject` | "s3.object.key" value |
    assert ce["subject"] == "b21b84d653bb07b05b1e6b33684dc11b"
    # | `time` | "eventTime" value |
    assert ce["time"] == "2019-09-03T19:37:27.192Z"
    # | `data` | S3 event |
    assert ce["data"] == rec
    assert set(ce) == {
        "specversion", "id", "source", "type", "datacontenttype", "subject", "time", "data"
    }  # fmt: skip


def test_s3_with_several_records_gives_one_cloudevent_each() -> None:
    event = sample("s3_put.json")["event"]
    second = copy.deepcopy(event["Records"][0])
    second["eventName"] = "ObjectRemoved:Delete"
    second["s3"]["object"]["key"] = "other%2Fkey"
    second["responseElements"]["x-amz-request-id"] = "SECOND"
    event["Records"].append(second)
    records = to_batch(event, SETTINGS).records
    assert [r.event["type"] for r in records] == [
        "com.amazonaws.s3.ObjectCreated:Put",
        "com.amazonaws.s3.ObjectRemoved:Delete",
    ]
    assert records[1].event["subject"] == "other%2Fkey"
    assert records[1].event["id"].startswith("SECOND.")
    assert records[1].event["data"] is second


def test_sns_notification_attribute_by_attribute_as_the_adapter_table_says() -> None:
    event = sample("sns.json")["event"]
    batch = to_batch(event, SETTINGS)
    assert batch.source_kind == "sns"
    (record,) = batch.records
    ce, msg = record.event, event["Records"][0]["Sns"]
    # ### Notification
    # | `id` | "x-amz-sns-message-id" value |
    assert ce["id"] == "95df01b4-ee98-5cb9-9903-4c221d41eb5e"
    # | `source` | "x-amz-sns-subscription-arn" value |
    assert ce["source"] == (
        "arn:aws:sns:us-east-2:123456789012:sns-lambda:21be56ed-a058-49f5-8c98-aedd2564c486"
    )
    # | `specversion` | `1.0` |
    assert ce["specversion"] == "1.0"
    # | `type` | `com.amazonaws.sns.` + "x-amz-sns-message-type" value |
    assert ce["type"] == "com.amazonaws.sns.Notification"
    # | `datacontenttype` | `application/json` |
    assert ce["datacontenttype"] == "application/json"
    # | `dataschema` | Omit |
    assert "dataschema" not in ce
    # | `subject` | "Subject" value (if present) |
    assert ce["subject"] == "TestInvoke"
    # | `time` | "Timestamp" value |
    assert ce["time"] == "2019-01-02T12:45:07.000Z"
    # | `data` | HTTP payload |
    assert ce["data"] == msg


def test_sns_notification_without_subject_omits_it() -> None:
    event = sample("sns.json")["event"]
    event["Records"][0]["Sns"]["Subject"] = None
    (record,) = to_batch(event, SETTINGS).records
    assert "subject" not in record.event


def test_sqs_messages_one_cloudevent_each_with_message_id_as_item() -> None:
    event = sample("sqs.json")["event"]
    batch = to_batch(event, SETTINGS)
    assert batch.source_kind == "sqs" and not batch.partial
    assert [r.item_id for r in batch.records] == [
        "059f36b4-87a3-44ab-83d2-661975830a7d",
        "2e1424d4-f796-459a-8184-9c92662be6da",
    ]
    assert batch.records[0].event == {
        "specversion": "1.0",
        "id": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "source": "arn:aws:sqs:us-east-2:123456789012:my-queue",
        "type": "com.amazonaws.sqs.message",
        "time": "2018-12-17T21:37:29.183Z",  # SentTimestamp 1545082649183
        "datacontenttype": "text/plain",
        "data": "Test message.",
    }
    assert batch.records[1].event["time"] == "2018-12-17T21:37:30.636Z"


def test_sqs_json_body_is_parsed_and_an_embedded_cloudevent_is_that_event() -> None:
    event = sample("sqs.json")["event"]
    event["Records"][0]["body"] = '{"order": 42}'
    inner = {"specversion": "1.0", "id": "x1", "source": "/shop", "type": "com.example.order"}
    event["Records"][1]["body"] = json.dumps(inner)
    a, b = to_batch(event, SETTINGS).records
    assert a.event["datacontenttype"] == "application/json" and a.event["data"] == {"order": 42}
    assert b.event == inner and b.item_id == "2e1424d4-f796-459a-8184-9c92662be6da"


def test_partial_batch_flag_follows_settings_and_source() -> None:
    on = CloudEventsSettings(partial_batch_response=True)
    assert to_batch(sample("sqs.json")["event"], on).partial
    assert to_batch(sample("kinesis.json")["event"], on).partial
    assert to_batch(sample("dynamodb.json")["event"], on).partial
    assert not to_batch(sample("sns.json")["event"], on).partial
    assert not to_batch(sample("s3_put.json")["event"], on).partial


def test_kinesis_data_decoded_and_sequence_number_as_item() -> None:
    batch = to_batch(sample("kinesis.json")["event"], SETTINGS)
    assert batch.source_kind == "kinesis"
    first, second = batch.records
    assert first.item_id == "49590338271490256608559692538361571095921575989136588898"
    assert first.event == {
        "specversion": "1.0",
        "id": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
        "source": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream",
        "type": "com.amazonaws.kinesis.record",
        "subject": "1",
        "time": "2018-12-17T22:10:50.987Z",  # approximateArrivalTimestamp 1545084650.987
        "datacontenttype": "text/plain",
        "data": "Hello, this is a test.",
    }
    assert second.event["data"] == "This is only a test."
    assert second.event["time"] == "2018-12-17T22:11:51.166Z"


def test_kinesis_json_data_is_parsed_and_binary_stays_base64() -> None:
    event = sample("kinesis.json")["event"]
    event["Records"][0]["kinesis"]["data"] = base64.b64encode(b'{"temp": 21.5}').decode()
    binary = base64.b64encode(b"\xff\x00\xfe").decode()
    event["Records"][1]["kinesis"]["data"] = binary
    a, b = to_batch(event, SETTINGS).records
    assert a.event["datacontenttype"] == "application/json" and a.event["data"] == {"temp": 21.5}
    assert b.event["datacontenttype"] == "application/octet-stream"
    assert b.event["data_base64"] == binary and "data" not in b.event


def test_dynamodb_records() -> None:
    event = sample("dynamodb.json")["event"]
    batch = to_batch(event, SETTINGS)
    assert batch.source_kind == "dynamodb"
    assert [r.item_id for r in batch.records] == [
        "4421584500000000017450439091",
        "4421584500000000017450439092",
        "4421584500000000017450439093",
    ]
    assert [r.event["type"] for r in batch.records] == [
        "com.amazonaws.dynamodb.INSERT",
        "com.amazonaws.dynamodb.MODIFY",
        "com.amazonaws.dynamodb.REMOVE",
    ]
    assert batch.records[0].event == {
        "specversion": "1.0",
        "id": "c4ca4238a0b923820dcc509a6f75849b",
        "source": event["Records"][0]["eventSourceARN"],
        "type": "com.amazonaws.dynamodb.INSERT",
        "time": "2015-04-09T00:00:00.000Z",  # ApproximateCreationDateTime 1428537600
        "datacontenttype": "application/json",
        "data": event["Records"][0]["dynamodb"],
    }


def test_scheduled_event() -> None:
    batch = to_batch(sample("eventbridge_scheduled.json")["event"], SETTINGS)
    assert batch.source_kind == "eventbridge"
    assert batch.records[0].event == {
        "specversion": "1.0",
        "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
        "source": "aws.events",
        "type": "Scheduled Event",
        "subject": "arn:aws:events:us-east-2:123456789012:rule/my-schedule",
        "time": "2019-03-01T01:23:45Z",
        "datacontenttype": "application/json",
        "data": {},
    }


def test_eventbridge_event() -> None:
    (record,) = to_batch(sample("eventbridge_ec2.json")["event"], SETTINGS).records
    assert record.event["type"] == "EC2 Instance State-change Notification"
    assert record.event["source"] == "aws.ec2"
    assert record.event["data"] == {"instance-id": "i-1234567890abcdef0", "state": "terminated"}
    assert record.item_id is None


def test_direct_structured_cloudevent_is_that_event() -> None:
    ce = {
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "https://github.com/cloudevents/spec/pull",
        "type": "com.github.pull_request.opened",
        "subject": "123",
        "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value",
        "datacontenttype": "text/xml",
        "data": '<much wow="xml"/>',
    }
    batch = to_batch(ce, SETTINGS)
    assert batch.source_kind == "cloudevent"
    assert batch.records[0].event == ce


@pytest.mark.parametrize("event", [{"hello": "world"}, [1, 2], "text", 7, None, {"Records": []}])
def test_unrecognised_events_become_generic_invoke_events(event: Any) -> None:
    batch = to_batch(event, SETTINGS, request_id="req-1")
    assert batch.source_kind == "generic"
    assert batch.records[0].event == {
        "specversion": "1.0",
        "id": "req-1",
        "source": "urn:sor:lambda",
        "type": "com.amazonaws.lambda.invoke",
        "datacontenttype": "application/json",
        "data": event,
    }


def test_generic_event_without_request_id_gets_a_fresh_id() -> None:
    a = to_batch({"x": 1}, SETTINGS).records[0].event["id"]
    b = to_batch({"x": 1}, SETTINGS).records[0].event["id"]
    assert a and b and a != b


def _drop(event: dict[str, Any], *path: str | int) -> dict[str, Any]:
    doc: Any = event
    for step in path[:-1]:
        doc = doc[step]
    del doc[path[-1]]
    return event


@pytest.mark.parametrize(
    ("name", "path", "message"),
    [
        (
            "sqs.json",
            ("Records", 0, "messageId"),
            "SQS event: Records[0]: missing field 'messageId'",
        ),
        ("sqs.json", ("Records", 1, "body"), "SQS event: Records[1]: missing field 'body'"),
        ("sqs.json", ("Records", 0, "eventSourceARN"), "missing field 'eventSourceARN'"),
        (
            "kinesis.json",
            ("Records", 1, "kinesis", "sequenceNumber"),
            "Kinesis event: Records[1].kinesis: missing field 'sequenceNumber'",
        ),
        ("kinesis.json", ("Records", 0, "kinesis"), "Records[0]: missing field 'kinesis'"),
        (
            "dynamodb.json",
            ("Records", 2, "dynamodb", "SequenceNumber"),
            "DynamoDB event: Records[2].dynamodb: missing field 'SequenceNumber'",
        ),
        (
            "s3_put.json",
            ("Records", 0, "responseElements", "x-amz-id-2"),
            "S3 event: Records[0].responseElements: missing field 'x-amz-id-2'",
        ),
        (
            "s3_put.json",
            ("Records", 0, "s3", "object", "key"),
            "Records[0].s3.object: missing field 'key'",
        ),
        (
            "sns.json",
            ("Records", 0, "Sns", "MessageId"),
            "Records[0].Sns: missing field 'MessageId'",
        ),
        ("sns.json", ("Records", 0, "EventSubscriptionArn"), "'EventSubscriptionArn'"),
        ("eventbridge_ec2.json", ("id",), "EventBridge event: missing field 'id'"),
    ],
)
def test_malformed_events_name_the_field(
    name: str, path: tuple[str | int, ...], message: str
) -> None:
    event = _drop(sample(name)["event"], *path)
    with pytest.raises(EventMappingError) as info:
        to_batch(event, SETTINGS)
    assert message in info.value.message
    assert info.value.payload()["errorType"] == "Sor.EventMappingError"


def test_wrong_field_types_are_named() -> None:
    event = sample("kinesis.json")["event"]
    event["Records"][0]["kinesis"]["data"] = "not base64!"
    with pytest.raises(EventMappingError, match=r"Records\[0\]\.kinesis: field 'data'"):
        to_batch(event, SETTINGS)
    event = sample("sqs.json")["event"]
    event["Records"][0]["attributes"]["SentTimestamp"] = "yesterday"
    with pytest.raises(EventMappingError, match="SentTimestamp"):
        to_batch(event, SETTINGS)
    event = sample("eventbridge_ec2.json")["event"]
    event["time"] = "22/12/2017"
    with pytest.raises(EventMappingError, match="'time' is not RFC 3339"):
        to_batch(event, SETTINGS)


def test_every_built_in_result_is_valid_cloudevents() -> None:
    """Checked by sor's validator and read back by the cloudevents SDK's JSON format."""
    from cloudevents.core.formats.json import JSONFormat

    seen = 0
    for path in DATA.glob("*.json"):
        doc = json.loads(path.read_text())
        if "event" in doc:
            for record in to_batch(doc["event"], SETTINGS).records:
                validate_cloudevent(record.event)
                parsed = JSONFormat().read(None, json.dumps(record.event).encode())
                assert parsed.get_id() == record.event["id"]
                assert parsed.get_type() == record.event["type"]
                seen += 1
    assert seen >= 14


def test_json_format_2_2_nulls_of_a_direct_cloudevent_are_dropped_not_passed_on() -> None:
    # The spec's own JSON-object example (json-format.md 3.2) has "subject": null; its XML example
    # an "unsetextension": null. Both mean unset: the handler never sees them.
    ce = {
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "subject": None,
        "id": "C234-1234-1234",
        "time": None,
        "unsetextension": None,
        "comexampleothervalue": 5,
        "datacontenttype": "application/json",
        "data": None,
    }
    (record,) = to_batch(ce, SETTINGS).records
    assert record.event == {
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "id": "C234-1234-1234",
        "comexampleothervalue": 5,
        "datacontenttype": "application/json",
        "data": None,  # 3.1.1: an explicit null payload, not an attribute
    }


def test_json_format_2_2_nulls_of_a_cloudevent_in_an_sqs_message_are_dropped() -> None:
    event = sample("sqs.json")["event"]
    embedded = {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t", "subject": None}
    event["Records"][0]["body"] = json.dumps({**embedded, "tenant": None})
    records = to_batch(event, SETTINGS).records
    assert records[0].event == {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t"}
