"""Server-sent events through a function URL: GET / is a page, GET /events streams ticks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

PAGE = """<!doctype html>
<title>sor: server-sent events</title>
<ul id="log"></ul>
<script>
  const events = new EventSource("events?count=5");
  events.onmessage = (e) => {
    const item = document.createElement("li");
    item.textContent = e.data;
    document.getElementById("log").append(item);
  };
  events.addEventListener("done", () => events.close());
</script>
"""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("rawPath") != "/events":
        return {"statusCode": 200, "headers": {"content-type": "text/html"}, "body": PAGE}
    count = int((event.get("queryStringParameters") or {}).get("count", "5"))
    return {
        "statusCode": 200,
        "headers": {"content-type": "text/event-stream", "cache-control": "no-cache"},
        "body": ticks(count),  # an iterator body: sor streams it, each event as it is yielded
    }


def ticks(count: int) -> Iterator[str]:
    for i in range(count):
        if i:
            time.sleep(1)
        yield f"data: {json.dumps({'tick': i, 'at': round(time.time(), 3)})}\n\n"
    yield "event: done\ndata: bye\n\n"
