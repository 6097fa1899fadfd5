"""An ordinary Lambda handler: it runs under sor unchanged."""

from __future__ import annotations

import sys
from typing import Any


def hello(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Greets the event's `name`, saying which request and which interpreter answered."""
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    return {
        "message": f"hello {name} from Python {sys.version.split()[0]}",
        "requestId": context.aws_request_id,
        "interpreter": sys.executable,
    }
