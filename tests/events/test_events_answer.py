"""Combining per-record outcomes into the Lambda response."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sor.config.model import CloudEventsSettings
from sor.errors import FunctionError
from sor.events.batch import answer, to_batch
from sor.events.model import Outcome

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
PARTIAL = CloudEventsSettings(partial_batch_response=True)
WHOLE = CloudEventsSettings(partial_batch_response=False)


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())["event"]  # type: ignore[no-any-return]


def sqs_batch_of(n: int) -> dict[str, Any]:
    """The documented SQS event grown to ``n`` messages with distinct ids (Lambda sends <= 10)."""
    event = sample("sqs.json")
    template = event["Records"][0]
    event["Records"] = []
    for i in range(n):
        record = copy.deepcopy(template)
        record["messageId"] = f"059f36b4-87a3-44ab-83d2-66197583{i:04d}"
        record["body"] = json.dumps({"n": i})
        event["Records"].append(record)
    return event


def ok(value: Any = None) -> Outcome:
    return Outcome(ok=True, value=value)


def failed(message: str) -> Outcome:
    return Outcome(ok=False, error={"errorType": "ValueError", "errorMessage": message})


def test_sqs_batch_of_ten_with_three_failures_reports_exactly_those() -> None:
    batch = to_batch(sqs_batch_of(10), PARTIAL)
    assert len(batch.records) == 10 and batch.partial
    failing = {2, 5, 9}
    outcomes = [failed(f"bad {i}") if i in failing else ok(i) for i in range(10)]
    assert answer(batch, outcomes, PARTIAL) == {
        "batchItemFailures": [
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830002"},
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830005"},
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830009"},
        ]
    }
    # The records the handler saw are the messages, in order.
    assert [r.event["data"] for r in batch.records] == [{"n": i} for i in range(10)]


def test_partial_response_with_no_failure_is_empty() -> None:
    batch = to_batch(sqs_batch_of(3), PARTIAL)
    assert answer(batch, [ok(), ok(), ok()]) == {"batchItemFailures": []}


def test_kinesis_and_dynamodb_report_sequence_numbers() -> None:
    kinesis = to_batch(sample("kinesis.json"), PARTIAL)
    assert answer(kinesis, [ok(), failed("x")]) == {
        "batchItemFailures": [
            {"itemIdentifier": "49590338271490256608559692540925702759324208523137515618"}
        ]
    }
    ddb = to_batch(sample("dynamodb.json"), PARTIAL)
    assert answer(ddb, [failed("x"), ok(), failed("y")]) == {
        "batchItemFailures": [
            {"itemIdentifier": "4421584500000000017450439091"},
            {"itemIdentifier": "4421584500000000017450439093"},
        ]
    }


def test_without_partial_response_the_first_failure_fails_the_invocation() -> None:
    batch = to_batch(sqs_batch_of(4), WHOLE)
    with pytest.raises(FunctionError) as info:
        answer(batch, [ok(), failed("first"), failed("second"), ok()], WHOLE)
    assert info.value.payload() == {"errorType": "ValueError", "errorMessage": "first"}


def test_settings_can_turn_partial_response_off_at_answer_time() -> None:
    batch = to_batch(sqs_batch_of(2), PARTIAL)
    with pytest.raises(FunctionError):
        answer(batch, [ok(), failed("no")], WHOLE)


def test_failure_without_error_object_still_names_the_record() -> None:
    batch = to_batch(sample("sns.json"), WHOLE)
    with pytest.raises(FunctionError, match="sns record 0 failed"):
        answer(batch, [Outcome(ok=False)])


def test_single_record_returns_its_result_and_several_return_a_list() -> None:
    one = to_batch(sample("eventbridge_scheduled.json"), WHOLE)
    assert answer(one, [ok({"done": True})]) == {"done": True}
    many = to_batch(sqs_batch_of(3), WHOLE)
    assert answer(many, [ok(1), ok(None), ok("x")]) == [1, None, "x"]


def test_outcome_count_must_match() -> None:
    batch = to_batch(sqs_batch_of(3), WHOLE)
    with pytest.raises(ValueError, match="2 outcome"):
        answer(batch, [ok(), ok()])
