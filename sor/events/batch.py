"""From a Lambda event to a batch of CloudEvents, and from handler outcomes to the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sor.config.model import CloudEventsSettings
from sor.errors import FunctionError
from sor.events import builtin
from sor.events.fields import new_id
from sor.events.http import http_records, is_http, to_http_response
from sor.events.model import Batch, Outcome, Record, is_cloudevent, validate_cloudevent


def to_batch(event: Any, settings: CloudEventsSettings, *, request_id: str | None = None) -> Batch:
    """Recognise the source of ``event`` and turn it into one CloudEvent per record.

    Declared mappings are tried first, in order; then the built-in sources; an event nothing
    recognises becomes a generic ``com.amazonaws.lambda.invoke`` event whose id is
    ``request_id`` (the Lambda request id; a random UUID when not given). Raises
    EventMappingError naming the field when a recognised event is malformed.
    """
    for mapping in settings.compiled:
        if mapping.matches(event):
            records = mapping.apply(event)
            partial = settings.partial_batch_response and mapping.item_id is not None
            http = isinstance(event, dict) and is_http(event)
            return _checked(Batch(mapping.kind, records, http=http, partial=partial))
    kind, records, http = _builtin(event, request_id)
    partial = settings.partial_batch_response and kind in builtin.PARTIAL_SOURCES
    return _checked(Batch(kind, records, http=http, partial=partial))


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
    for i, record in enumerate(batch.records):
        validate_cloudevent(record.event, f"{batch.source_kind} CloudEvent [{i}]")
    return batch


def answer(
    batch: Batch, outcomes: Sequence[Outcome], settings: CloudEventsSettings | None = None
) -> Any:
    """The Lambda response for ``batch`` given one outcome per record, in record order.

    - partial batch response (``batch.partial``; ``settings``, when given, can only turn it off):
      ``{"batchItemFailures": [{"itemIdentifier": ID}, ...]}`` listing the failed records;
    - otherwise the first failed record fails the invocation: raises FunctionError carrying that
      record's ERROR object;
    - otherwise one record: its result; several records: the list of their results.
    A result that is a CloudEvent becomes a binary-mode HTTP response for HTTP triggers and stays
    in structured JSON form for the others.
    """
    if len(outcomes) != len(batch.records):
        raise ValueError(f"{len(outcomes)} outcome(s) for {len(batch.records)} record(s)")
    if batch.partial and (settings is None or settings.partial_batch_response):
        failures = [
            {"itemIdentifier": record.item_id}
            for record, outcome in zip(batch.records, outcomes, strict=True)
            if not outcome.ok
        ]
        return {"batchItemFailures": failures}
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


def result(batch: Batch, value: Any) -> Any:
    """One handler result as the response wants it (see ``answer``)."""
    if not is_cloudevent(value):
        return value
    validate_cloudevent(value, "the handler's CloudEvent result")
    return to_http_response(value) if batch.http else value
