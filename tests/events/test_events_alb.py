"""Application Load Balancer events: HTTP requests like API Gateway's, and their answers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sor.config.model import CloudEventsSettings
from sor.errors import EventMappingError
from sor.events.batch import answer, to_batch
from sor.events.model import Outcome
from sor.events.problem import malformed_response

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
SETTINGS = CloudEventsSettings()
TARGET_GROUP = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
    "targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"
)
CE = {"ce-specversion": "1.0", "ce-id": "a-1", "ce-source": "/alb", "ce-type": "t"}
REPLY = {"specversion": "1.0", "id": "r", "source": "/fn", "type": "reply", "data": {"ok": 1}}


def alb(headers: dict[str, str] | None = None, body: str = "", multi: bool = False) -> Any:
    """AWS's documented ALB event; ``multi``: as a target group with multi-value headers."""
    event = copy.deepcopy(json.loads((DATA / "alb.json").read_text())["event"])
    if headers is not None:
        event["headers"] = headers
    event["body"] = body
    if multi:  # "Either headers or multiValueHeaders is set, never both"
        event["multiValueHeaders"] = {k: [v] for k, v in event.pop("headers").items()}
        event["multiValueQueryStringParameters"] = {
            k: [v] for k, v in event.pop("queryStringParameters").items()
        }
    return event


def test_a_plain_alb_request_is_an_http_request_cloudevent_from_its_target_group() -> None:
    event = alb()
    batch = to_batch(event, SETTINGS, request_id="lambda-req-1")
    assert batch.source_kind == "http" and batch.http and not batch.multi_value
    assert batch.records[0].event == {
        "specversion": "1.0",
        "id": "lambda-req-1",  # an ALB event has no request id of its own
        "source": TARGET_GROUP,
        "type": "com.amazonaws.lambda.http.request",
        "subject": "/lambda",
        "httpmethod": "GET",
        "datacontenttype": "application/json",
        "data": event,
    }  # and no time: an ALB event carries none


@pytest.mark.parametrize("multi", [False, True], ids=["headers", "multi-value headers"])
def test_a_cloudevent_sent_through_an_alb_is_decoded_as_over_api_gateway(multi: bool) -> None:
    headers = {**CE, "ce-subject": '"a \\"b\\""', "content-type": "text/plain"}
    batch = to_batch(alb(headers, "hi", multi), SETTINGS)
    assert batch.multi_value == multi
    assert batch.records[0].event == {
        "specversion": "1.0",
        "id": "a-1",
        "source": "/alb",
        "type": "t",
        "subject": 'a "b"',
        "datacontenttype": "text/plain",
        "data": "hi",
    }


def test_answers_to_an_alb_with_multi_value_headers_use_multi_value_headers() -> None:
    single = answer(to_batch(alb(CE), SETTINGS), [Outcome(ok=True, value=REPLY)])
    assert single["headers"]["ce-type"] == "reply" and "multiValueHeaders" not in single
    multi = answer(to_batch(alb(CE, multi=True), SETTINGS), [Outcome(ok=True, value=REPLY)])
    assert "headers" not in multi
    assert multi["multiValueHeaders"]["ce-type"] == ["reply"]
    assert multi["multiValueHeaders"]["content-type"] == ["application/json"]
    assert (multi["statusCode"], json.loads(multi["body"])) == (200, {"ok": 1})


@pytest.mark.parametrize("multi", [False, True], ids=["headers", "multi-value headers"])
def test_a_malformed_cloudevent_through_an_alb_answers_400(multi: bool) -> None:
    event = alb({**CE, "ce-time": "soon"}, multi=multi)
    with pytest.raises(EventMappingError) as info:
        to_batch(event, SETTINGS)
    response = malformed_response(event, info.value, SETTINGS)
    assert response is not None and response["statusCode"] == 400
    headers = response["multiValueHeaders" if multi else "headers"]
    expected = ["application/problem+json"] if multi else "application/problem+json"
    assert headers["content-type"] == expected
    assert json.loads(response["body"])["attribute"] == "time"
