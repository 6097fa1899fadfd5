"""The HTTP answer to a malformed CloudEvent: 400 with a JSON problem, not a failed invocation.

A CloudEvent sent to an HTTP trigger (API Gateway, function URL) that cannot be read is the
caller's mistake: failing the invocation would make API Gateway answer 502 and say nothing of
what is wrong. Under ``cloudevents.malformed: respond`` (the default) the caller gets 400 and an
``application/problem+json`` body (RFC 9457) naming the attribute and the reason; ``fail``
restores the failed invocation.
"""

from __future__ import annotations

import json
from typing import Any

from sor.config.model import CloudEventsSettings
from sor.errors import EventMappingError
from sor.events.http import for_trigger, is_http, multi_value_headers

PROBLEM_TYPE = "application/problem+json"
TITLE = "Malformed CloudEvent"


def malformed_response(
    event: Any, error: EventMappingError, settings: CloudEventsSettings
) -> dict[str, Any] | None:
    """The HTTP 400 response for ``error``, raised mapping ``event``; None when the invocation
    is to fail instead (``malformed: fail``, or ``event`` came from no HTTP trigger)."""
    if settings.malformed != "respond" or not isinstance(event, dict) or not is_http(event):
        return None
    problem = {
        "title": TITLE,
        "status": 400,
        "detail": error.message,
        "attribute": error.attribute,
        "reason": error.reason,
    }
    response = {
        "statusCode": 400,
        "headers": {"content-type": PROBLEM_TYPE},
        "body": json.dumps(problem, ensure_ascii=False),
        "isBase64Encoded": False,
    }
    return for_trigger(response, multi_value_headers(event))
