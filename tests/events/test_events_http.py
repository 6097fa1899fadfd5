"""HTTP triggers: CloudEvents in binary and structured mode, plain requests, SNS HTTP deliveries.

The HTTP messages are produced (and the responses read back) by the ``cloudevents`` SDK's HTTP
binding, an implementation independent of sor's.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from sor.config.model import CloudEventsSettings
from sor.errors import EventMappingError
from sor.events.batch import answer, to_batch
from sor.events.model import Outcome

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
SETTINGS = CloudEventsSettings()


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())  # type: ignore[no-any-return]


def request(name: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The documented request event of ``name`` carrying ``headers`` and ``body``.

    Like API Gateway and function URLs, text and JSON bodies travel as text, others as base64.
    """
    event = copy.deepcopy(sample(name)["event"])
    event["headers"] = headers
    event.pop("multiValueHeaders", None)
    try:
        event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
    except UnicodeDecodeError:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


ORDER = CloudEvent(
    attributes={
        "type": "com.example.order.placed",
        "source": "/shop/orders",
        "id": "ord-1",
        "time": datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc),
        "subject": 'order 42 "new" 100%',
        "datacontenttype": "application/json",
        "tenant": "acme",
    },
    data={"order": 42, "note": "café"},
)
TEXT = CloudEvent(
    attributes={"type": "t.text", "source": "/s", "id": "2", "datacontenttype": "text/plain"},
    data="hi there",
)
BYTES = CloudEvent(
    attributes={
        "type": "t.bin",
        "source": "/s",
        "id": "3",
        "datacontenttype": "application/octet-stream",
    },
    data=b"\x00\xff\x10",
)


@pytest.mark.parametrize(
    "trigger", ["http_api_v2.json", "function_url.json", "apigateway_rest_v1.json"]
)
@pytest.mark.parametrize("event", [ORDER, TEXT, BYTES], ids=["json", "text", "bytes"])
def test_binary_and_structured_modes_give_the_identical_cloudevent(
    trigger: str, event: CloudEvent
) -> None:
    expected = json.loads(JSONFormat().write(event))
    binary = ce_http.to_binary(event, JSONFormat())
    structured = ce_http.to_structured(event, JSONFormat())
    from_binary = to_batch(request(trigger, binary.headers, binary.body), SETTINGS)
    from_structured = to_batch(request(trigger, structured.headers, structured.body), SETTINGS)
    assert from_binary.source_kind == from_structured.source_kind == "http"
    assert from_binary.http and from_structured.http
    assert from_binary.records[0].event == expected
    assert from_structured.records[0].event == expected


def test_binary_mode_header_names_are_case_insensitive_on_rest_apis() -> None:
    message = ce_http.to_binary(ORDER, JSONFormat())
    headers = {name.title(): value for name, value in message.headers.items()}
    assert "Ce-Id" in headers
    event = request("apigateway_rest_v1.json", headers, message.body)
    assert to_batch(event, SETTINGS).records[0].event == json.loads(JSONFormat().write(ORDER))


def test_structured_batch_gives_one_record_per_event() -> None:
    events = [json.loads(JSONFormat().write(e)) for e in (ORDER, TEXT)]
    headers = {"content-type": "application/cloudevents-batch+json"}
    batch = to_batch(request("http_api_v2.json", headers, json.dumps(events).encode()), SETTINGS)
    assert [r.event for r in batch.records] == events


def test_plain_http_api_request_becomes_an_http_request_cloudevent() -> None:
    event = sample("http_api_v2.json")["event"]
    batch = to_batch(event, SETTINGS)
    assert batch.source_kind == "http" and batch.http
    assert batch.records[0].event == {
        "specversion": "1.0",
        "id": "id",
        "source": "https://id.execute-api.us-east-1.amazonaws.com",
        "type": "com.amazonaws.lambda.http.request",
        "subject": "/my/path",
        "time": "2020-03-04T19:03:58.390Z",  # requestContext.timeEpoch 1583348638390
        "httpmethod": "POST",
        "datacontenttype": "application/json",
        "data": event,
    }


def test_plain_rest_and_function_url_requests() -> None:
    rest = to_batch(sample("apigateway_rest_v1.json")["event"], SETTINGS).records[0].event
    assert (rest["id"], rest["httpmethod"], rest["subject"]) == ("id=", "GET", "/my/path")
    assert rest["time"] == "2020-03-04T19:15:17.135Z"  # requestTimeEpoch 1583349317135
    url = to_batch(sample("function_url.json")["event"], SETTINGS).records[0].event
    assert url["source"] == "https://<url-id>.lambda-url.us-west-2.on.aws"
    assert url["data"]["body"] == "Hello from client!"


def test_sns_http_notification_follows_the_adapter_table() -> None:
    doc = sample("sns_http_notification.json")
    event = request("function_url.json", doc["headers"], json.dumps(doc["body"]).encode())
    batch = to_batch(event, SETTINGS)
    assert batch.source_kind == "sns" and batch.http
    ce = batch.records[0].event
    # | `id` | "x-amz-sns-message-id" value |
    assert ce["id"] == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
    # | `source` | "x-amz-sns-subscription-arn" value |
    assert ce["source"] == (
        "arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0-26c4-47ec-8998-413945fb5a96"
    )
    # | `type` | `com.amazonaws.sns.` + "x-amz-sns-message-type" value |
    assert ce["type"] == "com.amazonaws.sns.Notification"
    # | `datacontenttype` | `application/json` |
    assert ce["datacontenttype"] == "application/json"
    # | `subject` | "Subject" value (if present) |
    assert ce["subject"] == "My First Message"
    # | `time` | "Timestamp" value |
    assert ce["time"] == "2012-05-02T00:54:06.655Z"
    # | `data` | HTTP payload |
    assert ce["data"] == doc["body"]
    assert "dataschema" not in ce


def test_sns_http_subscription_confirmation_uses_the_topic_arn() -> None:
    doc = sample("sns_http_subscription_confirmation.json")
    event = request("function_url.json", doc["headers"], json.dumps(doc["body"]).encode())
    ce = to_batch(event, SETTINGS).records[0].event
    # ### Subscription Confirmation
    # | `source` | "x-amz-sns-topic-arn" value |
    assert ce["source"] == "arn:aws:sns:us-west-2:123456789012:MyTopic"
    # | `type` | `com.amazonaws.sns.` + "x-amz-sns-message-type" value |
    assert ce["type"] == "com.amazonaws.sns.SubscriptionConfirmation"
    # | `subject` | Omit |
    assert "subject" not in ce
    assert ce["id"] == "165545c9-2a5c-472c-8df2-7ff2be2b3b1b"
    assert ce["time"] == "2012-04-26T20:45:04.751Z"


CE_HEADERS = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}, b"", "'id'"),
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s"}, b"", "'type'"),
        ({**CE_HEADERS, "ce-Bad_Name": "x"}, b"", "extension name 'bad_name'"),
        ({**CE_HEADERS, "ce-time": "now"}, b"", "'time' is not RFC 3339"),
        ({**CE_HEADERS, "content-type": "application/json"}, b"{not json", "not valid JSON"),
        ({"content-type": "application/cloudevents+json"}, b"{oops", "body is not valid JSON"),
        ({"content-type": "application/cloudevents+json"}, b'{"id": "1"}', "'specversion'"),
        (
            {"content-type": "application/cloudevents-batch+json"},
            b'{"specversion": "1.0"}',
            "must be a JSON array",
        ),
    ],
)
def test_malformed_http_cloudevents_name_the_problem(
    headers: dict[str, str], body: bytes, message: str
) -> None:
    with pytest.raises(EventMappingError) as info:
        to_batch(request("http_api_v2.json", headers, body), SETTINGS)
    assert message in info.value.message


def test_invalid_base64_body_is_named() -> None:
    event = request("http_api_v2.json", {"content-type": "application/cloudevents+json"}, b"{}")
    event["body"], event["isBase64Encoded"] = "***", True
    with pytest.raises(EventMappingError, match="HTTP event: body: not valid base64"):
        to_batch(event, SETTINGS)


@pytest.mark.parametrize("event", [ORDER, TEXT, BYTES], ids=["json", "text", "bytes"])
def test_cloudevent_result_of_http_trigger_is_a_binary_mode_response(event: CloudEvent) -> None:
    batch = to_batch(sample("http_api_v2.json")["event"], SETTINGS)
    returned = json.loads(JSONFormat().write(event))
    response = answer(batch, [Outcome(ok=True, value=returned)])
    assert response["statusCode"] == 200
    assert response["headers"]["ce-specversion"] == "1.0"
    body = response["body"]
    raw = base64.b64decode(body) if response["isBase64Encoded"] else body.encode()
    assert response["isBase64Encoded"] == (event is BYTES)
    decoded = ce_http.from_binary(ce_http.HTTPMessage(response["headers"], raw), JSONFormat())
    assert decoded.get_attributes() == event.get_attributes()
    assert decoded.get_data() == event.get_data()


def test_cloudevent_result_of_other_triggers_stays_structured() -> None:
    batch = to_batch(sample("eventbridge_scheduled.json")["event"], SETTINGS)
    returned = json.loads(JSONFormat().write(ORDER))
    assert answer(batch, [Outcome(ok=True, value=returned)]) == returned


def test_plain_results_of_http_triggers_pass_through() -> None:
    batch = to_batch(sample("function_url.json")["event"], SETTINGS)
    plain = {"statusCode": 201, "body": "made"}
    assert answer(batch, [Outcome(ok=True, value=plain)]) == plain


def test_invalid_cloudevent_result_is_refused() -> None:
    batch = to_batch(sample("function_url.json")["event"], SETTINGS)
    bad = {"specversion": "1.0", "id": "", "source": "/s", "type": "t"}
    with pytest.raises(EventMappingError, match="handler's CloudEvent result"):
        answer(batch, [Outcome(ok=True, value=bad)])


def test_request_without_request_id_uses_the_lambda_request_id() -> None:
    event = sample("function_url.json")["event"]
    del event["requestContext"]["requestId"]
    ce = to_batch(event, SETTINGS, request_id="lambda-req-7").records[0].event
    assert ce["id"] == "lambda-req-7"


def test_declared_mapping_on_an_http_event_keeps_http_responses() -> None:
    mapping = {
        "name": "webhook",
        "match": {"$.rawPath": "/my/path"},
        "attributes": {"id": "$.requestContext.requestId", "source": "/hook", "type": "hook"},
        "data": "$.body",
    }
    batch = to_batch(sample("function_url.json")["event"], CloudEventsSettings(mappings=(mapping,)))
    assert batch.source_kind == "webhook" and batch.http
    assert batch.records[0].event["data"] == "Hello from client!"
    reply = {"specversion": "1.0", "id": "r1", "source": "/hook", "type": "hook.reply", "data": [1]}
    response = answer(batch, [Outcome(ok=True, value=reply)])
    assert response["headers"]["ce-type"] == "hook.reply" and response["body"] == "[1]"
