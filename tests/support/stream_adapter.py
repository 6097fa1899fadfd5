"""An exec language runtime for the tests that plays a script of protocol messages per invoke.

Run by sor as ``runtime: {language: exec, command: [python, stream_adapter.py]}``. The event is
``{"steps": [...]}``; each step is one of:

- ``{"open": {...}}``: a `stream` message with these members (``contentType``, ``prelude``)
- ``{"chunk": "text"}`` / ``{"chunk64": "base64"}``: a `chunk` of that text, or of raw base64
- ``{"bytes": N, "times": M}``: M chunks of N bytes each (``x``), written as fast as possible
- ``{"stamp": true}``: a chunk holding this process's ``time.monotonic()`` as it writes it
- ``{"sleep": SECONDS}``, ``{"end": true}``, ``{"error": ERROR}``, ``{"result": VALUE}``
- ``{"raw": {...}}``: a message with these members, and the invoke's id and seal
- ``{"exit": CODE}``: the process exits at once

An event without steps is answered with itself as the result. Under the cloudevent signature
the steps are the CloudEvent's ``data``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from typing import Any


def main() -> None:
    out = os.fdopen(4, "wb", buffering=0)
    out.write(b'{"type":"ready","seal":true}\n')
    for line in os.fdopen(3, "rb"):
        invoke = json.loads(line)
        head = {"id": invoke["id"], "seal": invoke["seal"]}

        def send(message: dict[str, Any], head: dict[str, str] = head, times: int = 1) -> None:
            line = json.dumps({**message, **head}).encode() + b"\n"
            for _ in range(times):
                out.write(line)

        event = invoke["event"]
        if isinstance(event, dict) and "specversion" in event:  # the cloudevent signature
            event = event.get("data")
        steps = event.get("steps") if isinstance(event, dict) else None
        if steps is None:
            send({"type": "result", "result": invoke["event"]})
            continue
        for step in steps:
            play(step, send)


def play(step: dict[str, Any], send: Callable[..., None]) -> None:
    if "open" in step:
        send({"type": "stream", **step["open"]})
    elif "chunk" in step:
        send({"type": "chunk", "data": base64.b64encode(str(step["chunk"]).encode()).decode()})
    elif "chunk64" in step:
        send({"type": "chunk", "data": step["chunk64"]})
    elif "bytes" in step:
        data = base64.b64encode(b"x" * int(step["bytes"])).decode()
        send({"type": "chunk", "data": data}, times=int(step.get("times", 1)))
    elif "stamp" in step:
        stamp = repr(time.monotonic()).encode()
        send({"type": "chunk", "data": base64.b64encode(stamp).decode()})
    elif "sleep" in step:
        time.sleep(float(step["sleep"]))
    elif "end" in step:
        send({"type": "end"})
    elif "error" in step:
        send({"type": "error", "error": step["error"]})
    elif "result" in step:
        send({"type": "result", "result": step["result"]})
    elif "raw" in step:
        send(dict(step["raw"]))
    elif "exit" in step:
        os._exit(int(step["exit"]))


if __name__ == "__main__":
    main()
