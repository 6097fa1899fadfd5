"""Combining per-record outcomes into the Lambda response."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sor.config.model import CloudEventsSettings
from sor.errors import FunctionError
from sor.events.batch import answer, stops_here, to_batch
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


def fifo_batch_of(n: int) -> dict[str, Any]:
    """AWS's documented FIFO queue event grown to ``n`` messages of one message group."""
    event = sample("sqs_fifo.json")
    template = event["Records"][0]
    event["Records"] = []
    for i in range(n):
        record = copy.deepcopy(template)
        record["messageId"] = f"11d6ee51-4cc7-4302-9e22-7cd8afda{i:04d}"
        record["attributes"]["SequenceNumber"] = str(18849496460467696128 + i)
        event["Records"].append(record)
    return event


def ids(*numbers: int) -> dict[str, Any]:
    return {
        "batchItemFailures": [
            {"itemIdentifier": f"11d6ee51-4cc7-4302-9e22-7cd8afda{i:04d}"} for i in numbers
        ]
    }


def test_fifo_queues_are_recognised_by_their_arn_or_message_group() -> None:
    assert to_batch(fifo_batch_of(2), PARTIAL).fifo
    by_group = fifo_batch_of(2)
    for record in by_group["Records"]:
        record["eventSourceARN"] = "arn:aws:sqs:us-east-2:123456789012:orders"
    assert to_batch(by_group, PARTIAL).fifo  # only FIFO queues have message groups
    by_arn = fifo_batch_of(2)
    for record in by_arn["Records"]:
        del record["attributes"]["MessageGroupId"]
    assert to_batch(by_arn, PARTIAL).fifo
    assert not to_batch(sqs_batch_of(2), PARTIAL).fifo  # the documented standard queue
    assert not to_batch(sample("kinesis.json"), PARTIAL).fifo


def test_fifo_partial_response_reports_the_first_failure_and_every_later_message() -> None:
    # AWS (Lambda developer guide, with-sqs.html, partial batch responses): "If you're using this
    # feature with a FIFO queue, your function should stop processing messages after the first
    # failure and return all failed and unprocessed messages in batchItemFailures."
    batch = to_batch(fifo_batch_of(6), PARTIAL)
    assert batch.partial and batch.fifo
    # The loop stopped at the failure of message 2: messages 3-5 never ran.
    assert answer(batch, [ok(), ok(), failed("bad 2")], PARTIAL) == ids(2, 3, 4, 5)
    # Had they run (a caller that does not stop), they are still reported: order comes first.
    outcomes = [ok(), failed("bad 1"), ok(), ok(), failed("bad 4"), ok()]
    assert answer(batch, outcomes, PARTIAL) == ids(1, 2, 3, 4, 5)
    assert answer(batch, [ok()] * 6, PARTIAL) == {"batchItemFailures": []}
    assert answer(batch, [failed("first")], PARTIAL) == ids(0, 1, 2, 3, 4, 5)


def test_stops_here_only_after_a_failure_of_a_fifo_partial_batch() -> None:
    fifo = to_batch(fifo_batch_of(3), PARTIAL)
    assert not stops_here(fifo, [])
    assert not stops_here(fifo, [ok(), ok()])
    assert stops_here(fifo, [ok(), failed("x")])
    standard = to_batch(sqs_batch_of(3), PARTIAL)
    assert not stops_here(standard, [ok(), failed("x")])  # standard queues go on
    whole = to_batch(fifo_batch_of(3), WHOLE)
    assert not stops_here(whole, [failed("x")])  # no partial response: the failure is raised


def test_non_fifo_partial_responses_are_unchanged_and_need_every_outcome() -> None:
    batch = to_batch(sqs_batch_of(3), PARTIAL)
    assert answer(batch, [ok(), failed("x"), ok()], PARTIAL) == {
        "batchItemFailures": [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830001"}]
    }
    with pytest.raises(ValueError, match="2 outcome"):
        answer(batch, [ok(), failed("x")], PARTIAL)
    fifo = to_batch(fifo_batch_of(3), PARTIAL)
    with pytest.raises(ValueError, match="1 outcome"):
        answer(fifo, [ok()], PARTIAL)  # stopping early is only allowed at a failure


def test_fifo_without_partial_response_fails_the_invocation_at_the_first_failure() -> None:
    batch = to_batch(fifo_batch_of(3), WHOLE)
    with pytest.raises(FunctionError, match="bad 1"):
        answer(batch, [ok(), failed("bad 1"), ok()], WHOLE)
