"""From a Lambda event to a batch of CloudEvents, and from handler outcomes to the answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sor.config.model import CloudEventsSettings
from sor.errors import FunctionError
from sor.events import builtin
from sor.events.fields import new_id
from sor.events.http import http_records, is_http, multi_value_headers, to_http_response
from sor.events.model import (
    Batch,
    Outcome,
    Record,
    is_cloudevent,
    validate_cloudevent,
    without_nulls,
)


def to_batch(event: Any, settings: CloudEventsSettings, *, request_id: str | None = None) -> Batch:
    """Recognise the source of ``event`` and turn it into one CloudEvent per record.

    Declared mappings are tried first, in order; then the built-in sources; an event nothing
    recognises becomes a generic ``com.amazonaws.lambda.invoke`` event whose id is
    ``request_id`` (the Lambda request id; a random UUID when not given). Raises
    EventMappingError naming the field when a recognised event is malformed.
    """
    fifo, multi = is_fifo(event), multi_value_headers(event)
    for mapping in settings.compiled:
        if mapping.matches(event):
            records = mapping.apply(event)
            partial = settings.partial_batch_response and mapping.item_id is not None
            http = isinstance(event, dict) and is_http(event)
            batch = Batch(mapping.kind, records, http, partial, fifo, multi)
            return _checked(batch)
    kind, records, http = _builtin(event, request_id)
    partial = settings.partial_batch_response and kind in builtin.PARTIAL_SOURCES
    return _checked(Batch(kind, records, http, partial, fifo, multi))


def is_fifo(event: Any) -> bool:
    """True for a batch of an SQS FIFO queue: its ARN ends with ``.fifo``, or its messages carry a
    ``MessageGroupId`` (only FIFO queues have message groups). A batch comes from one queue, so
    the first record says."""
    records = event.get("Records") if isinstance(event, dict) else None
    first = records[0] if isinstance(records, list) and records else None
    if not isinstance(first, dict) or first.get("eventSource") != "aws:sqs":
        return False
    arn, attributes = first.get("eventSourceARN"), first.get("attributes")
    if isinstance(arn, str) and arn.endswith(".fifo"):
        return True
    return isinstance(attributes, dict) and "MessageGroupId" in attributes


def _builtin(event: Any, request_id: str | None) -> tuple[str, tuple[Record, ...], bool]:
    if isinstance(event, dict):
        if "specversion" in event:
            return "cloudevent", (Record(None, event),), False
        records = event.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            first = records[0]
            source = first.get("eventSource") or first.get("EventSource")
            found = builtin.BY_EVENT_SOURCE.get(source) if isinstance(source, str) else None
            if found is not None:
                return found[0], found[1](event), False
        elif is_http(event):
            kind, recs = http_records(event, request_id)
            return kind, recs, True
        elif "detail-type" in event and "source" in event:
            return "eventbridge", builtin.eventbridge(event), False
    return "generic", builtin.generic(event, request_id or new_id()), False


def _checked(batch: Batch) -> Batch:
    """``batch`` with every CloudEvent validated and its null (unset) attributes dropped."""
    records, changed = [], False
    for i, record in enumerate(batch.records):
        validate_cloudevent(record.event, f"{batch.source_kind} CloudEvent [{i}]")
        event = without_nulls(record.event)
        if event is not record.event:
            record, changed = Record(record.item_id, event), True
        records.append(record)
    # Rebuilt only when a null was dropped: this runs for every event.
    return replace(batch, records=tuple(records)) if changed else batch


def answer(
    batch: Batch, outcomes: Sequence[Outcome], settings: CloudEventsSettings | None = None
) -> Any:
    """The Lambda response for ``batch`` given one outcome per record, in record order.

    - partial batch response (``batch.partial``; ``settings``, when given, can only turn it off):
      ``{"batchItemFailures": [{"itemIdentifier": ID}, ...]}`` listing the failed records; for an
      SQS FIFO queue (``batch.fifo``) the first failed record and every record after it, run or
      not: ``outcomes`` may then stop at that failure (AWS: "your function should stop
      processing messages after the first failure and return all failed and unprocessed
      messages in batchItemFailures"; Powertools' SqsFifoPartialProcessor does the same);
    - otherwise the first failed record fails the invocation: raises FunctionError carrying that
      record's ERROR object;
    - otherwise one record: its result; several records: the list of their results.
    A result that is a CloudEvent becomes a binary-mode HTTP response for HTTP triggers and stays
    in structured JSON form for the others.
    """
    stopped = stops_here(batch, outcomes) and len(outcomes) < len(batch.records)
    if len(outcomes) != len(batch.records) and not stopped:
        raise ValueError(f"{len(outcomes)} outcome(s) for {len(batch.records)} record(s)")
    if batch.partial and (settings is None or settings.partial_batch_response):
        return {"batchItemFailures": _failures(batch, outcomes)}
    for i, outcome in enumerate(outcomes):
        if not outcome.ok:
            error = outcome.error or {
                "errorType": "Error",
                "errorMessage": f"{batch.source_kind} record {i} failed",
            }
            raise FunctionError(error)
    results = [result(batch, outcome.value) for outcome in outcomes]
    if len(results) == 1:
        return results[0]
    return results or None


def stops_here(batch: Batch, outcomes: Sequence[Outcome]) -> bool:
    """True when no further record of ``batch`` may run: an SQS FIFO partial batch whose last
    outcome failed (running later messages of the queue would break its order)."""
    return batch.fifo and batch.partial and bool(outcomes) and not outcomes[-1].ok


def _failures(batch: Batch, outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    failed = [i for i, outcome in enumerate(outcomes) if not outcome.ok]
    if batch.fifo and failed:
        return [{"itemIdentifier": r.item_id} for r in batch.records[failed[0] :]]
    return [{"itemIdentifier": batch.records[i].item_id} for i in failed]


def result(batch: Batch, value: Any) -> Any:
    """One handler result as the response wants it (see ``answer``)."""
    if not is_cloudevent(value):
        return value
    validate_cloudevent(value, "the handler's CloudEvent result")
    value = without_nulls(value)
    return to_http_response(value, batch.multi_value) if batch.http else value
