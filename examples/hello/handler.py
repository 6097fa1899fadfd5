"""A small Lambda handler: greets whoever the event names, using the Lambda context."""

from __future__ import annotations

from typing import Any


def hello(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = event.get("name") or "world"
    print(f"greeting {name}")  # the function's own log line, on stderr of `sor local invoke`
    return {
        "statusCode": 200,
        "body": f"Hello, {name}!",
        "requestId": context.aws_request_id,
        "function": context.function_name,
        "remainingMs": context.get_remaining_time_in_millis(),
    }
