"""Streaming through `sor local` on the real runtime: `sor run` with the Python adapter streaming a
generator, behind `sor local serve` (a function URL) and `sor local invoke`.

Skipped until sor's side of streaming (branch `stream`: sor/runtime/chunks.py) and the Python
adapter's (branch `pystream`: _sor_adapter/streaming.py) are merged; checked in a scratch merge
of the three branches.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.local_serve import Serve

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not (ROOT / "sor" / "runtime" / "chunks.py").exists()
    or not (ROOT / "runtimes" / "python" / "_sor_adapter" / "streaming.py").exists(),
    reason="needs sor's streaming (branch stream) and the Python adapter's (branch pystream)",
)

BROKEN = textwrap.dedent(
    """
    def handler(event, context):
        def gen():
            yield b"first\\n"
            yield b"second\\n"
            raise ValueError("broken mid-stream")
        return gen()
    """
)


@pytest.fixture(scope="module")
def sse() -> Iterator[Serve]:
    server = Serve(ROOT / "examples" / "streaming", "--timeout", "30")
    yield server
    server.stop()


def test_server_sent_events_reach_a_function_url_client_as_they_are_yielded(sse: Serve) -> None:
    conn = http.client.HTTPConnection(sse.url.removeprefix("http://"), timeout=30)
    conn.request("GET", "/events?count=3")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    received: list[tuple[float, bytes]] = []
    buffer = b""
    while piece := response.read1(65536):
        buffer += piece
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            received.append((time.time(), event))
    ticks = [json.loads(e.split(b"data: ", 1)[1]) for _, e in received if b"tick" in e]
    assert [t["tick"] for t in ticks] == [0, 1, 2]
    assert received[-1][1] == b"event: done\ndata: bye"
    # the first tick was read by the client before the handler had even produced the last one
    assert received[0][0] < ticks[-1]["at"]


def test_local_invoke_prints_the_chunks_then_the_error_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(BROKEN)
    (tmp_path / "sor.yml").write_text("version: 1\nruntime: {handler: app.handler}\n")
    done = subprocess.run(
        [sys.executable, "-m", "sor", "local", "invoke", str(tmp_path)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == b"first\nsecond\n"
    errors = [json.loads(line) for line in done.stderr.splitlines() if line.startswith(b"{")]
    assert [(e["errorType"], e["errorMessage"]) for e in errors] == [
        ("ValueError", "broken mid-stream")
    ]
