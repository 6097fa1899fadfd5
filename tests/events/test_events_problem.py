"""A malformed CloudEvent from an HTTP trigger answers 400 with a JSON problem (pure part)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sor.config.model import CloudEventsSettings
from sor.errors import EventMappingError
from sor.events.batch import to_batch
from sor.events.problem import malformed_response

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
RESPOND = CloudEventsSettings()  # the default
FAIL = CloudEventsSettings(malformed="fail")
CE = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}


def sample(name: str) -> Any:
    return copy.deepcopy(json.loads((DATA / name).read_text())["event"])


def request(headers: dict[str, str], body: str, trigger: str = "function_url.json") -> Any:
    event = sample(trigger)
    event.update(headers=headers, body=body, isBase64Encoded=False)
    event.pop("multiValueHeaders", None)
    return event


def problem_of(event: Any, settings: CloudEventsSettings = RESPOND) -> dict[str, Any] | None:
    with pytest.raises(EventMappingError) as info:
        to_batch(event, settings)
    return malformed_response(event, info.value, settings)


@pytest.mark.parametrize(
    ("headers", "body", "attribute", "reason"),
    [
        ({**CE, "ce-time": "now"}, "", "time", "attribute 'time' is not RFC 3339: 'now'"),
        (
            {k: v for k, v in CE.items() if k != "ce-id"},
            "",
            "id",
            "required attribute 'id' missing or not a non-empty string",
        ),
        ({**CE, "ce-subject": "%C0%A0"}, "", "subject", "percent-encoded bytes are not valid"),
        (
            {"content-type": "application/cloudevents+json"},
            '{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "Bad": 1}',
            "Bad",
            "extension name 'Bad' must be 1-20 lowercase letters or digits",
        ),
        ({"content-type": "application/cloudevents+json"}, "{oops", None, "body is not valid"),
        (
            {**CE, "content-type": "application/json"},
            "{oops",
            "data",
            "not valid JSON although its content type is application/json",
        ),
    ],
)
@pytest.mark.parametrize(
    "trigger", ["function_url.json", "http_api_v2.json", "apigateway_rest_v1.json"]
)
def test_malformed_http_cloudevent_answers_400_with_the_attribute_and_reason(
    headers: dict[str, str], body: str, attribute: str | None, reason: str, trigger: str
) -> None:
    response = problem_of(request(headers, body, trigger))
    assert response is not None
    assert response["statusCode"] == 400
    assert response["headers"] == {"content-type": "application/problem+json"}
    assert response["isBase64Encoded"] is False
    problem = json.loads(response["body"])
    assert problem["status"] == 400 and problem["title"] == "Malformed CloudEvent"
    assert problem["attribute"] == attribute
    assert reason in problem["reason"]
    assert problem["reason"] in problem["detail"]  # detail also says where


def test_malformed_fail_gives_no_response_the_invocation_fails() -> None:
    assert problem_of(request({**CE, "ce-time": "now"}, ""), FAIL) is None


def test_events_of_other_sources_fail_the_invocation() -> None:
    event = sample("sqs.json")
    del event["Records"][0]["messageId"]
    assert problem_of(event) is None
    assert problem_of({"specversion": "1.0", "id": "1", "source": "/s", "type": 7}) is None
