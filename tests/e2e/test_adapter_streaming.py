"""The shipped adapters' streaming through a real `sor run` (SPEC "Response streaming"): the Python
adapter's generators and HTTP dicts, and the bash example's stream functions, recorded on the
wire by the Runtime API server of tests/support/stream_api.py.

sor's side of streaming and that server come from branch `stream`: until it is merged, this
module is skipped (the adapters' own streaming tests are in tests/adapters).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import BASH_RUNTIME

pytest.importorskip("support.stream_run", reason="sor's side of streaming (branch stream)")
from support.stream_api import HTTP_INTEGRATION, StreamedAnswer
from support.stream_run import SorRun

PYTHON = "version: 1\nruntime:\n  language: python\n  handler: app.{}\n"
BASH = (
    f'version: 1\nruntime:\n  language: exec\n  command: ["{BASH_RUNTIME}"]\n  handler: lib.{{}}\n'
)

APP = r"""
import asyncio, time

def ticks(event, context):
    yield "data: one\n\n"
    time.sleep(0.3)
    yield "data: two\n\n"
    time.sleep(0.3)
    yield str(time.monotonic())  # when the last chunk was produced, on the test's clock

def page(event, context):
    async def body():
        yield "<h1>é</h1>"
        await asyncio.sleep(0)
        yield b"\0\n"
    return {"statusCode": 201, "headers": {"content-type": "text/html"}, "cookies": ["a=b"],
            "body": body()}

async def ticks_async(event, context):
    yield b"one"
    await asyncio.sleep(0.3)
    yield str(time.monotonic())  # when the last chunk was produced, on the test's clock

def fails_after(event, context):
    yield "partial"
    raise ValueError("mid-stream")

def fails_first(event, context):
    raise ValueError("before the stream")
    yield "never"

def hangs(event, context):
    yield "started"
    time.sleep(60)
    yield "never"

def plain(event, context):
    return {"plain": True}
"""

LIB = r"""
sse() {
  sor_stream_http 200 "content-type: text/event-stream" "Set-Cookie: s=1"
  sor_stream_write "data: one" $'\n\n'
  printf '\0\1\2\n' | sor_stream_write
}
fails() { sor_stream_write partial; return 5; }
"""


@pytest.fixture
def sor(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "lib.sh").write_text(LIB)
    started: list[SorRun] = []

    def start(config: str) -> SorRun:
        started.append(SorRun(tmp_path, config))
        return started[-1]

    yield start
    for run in started:
        run.stop()


def _streamed(answer: Any) -> StreamedAnswer:
    assert isinstance(answer, StreamedAnswer), (answer.kind, answer.headers, answer.body[:300])
    assert answer.problems == []
    return answer


def test_a_python_generator_streams_each_chunk_as_it_is_yielded(sor: Any) -> None:
    s = sor(PYTHON.format("ticks"))
    answer = _streamed(s.server.invoke({}))
    assert answer.header("Content-Type") == "application/octet-stream"
    data = [c.data for c in answer.chunks]
    assert data[:2] == [b"data: one\n\n", b"data: two\n\n"]
    produced = float(data[2])
    assert answer.chunks[0].at < answer.chunks[1].at < produced <= answer.chunks[2].at
    assert answer.trailers == {}


def test_a_python_async_generator_streams_each_chunk_as_it_is_yielded(sor: Any) -> None:
    s = sor(PYTHON.format("ticks_async"))
    answer = _streamed(s.server.invoke({}))
    assert answer.chunks[0].data == b"one"
    produced = float(answer.chunks[1].data)
    assert answer.chunks[0].at < produced <= answer.chunks[1].at  # the first left before
    assert answer.trailers == {}


def test_a_python_http_dict_with_an_async_body(sor: Any) -> None:
    s = sor(PYTHON.format("page"))
    answer = _streamed(s.server.invoke({}))
    assert answer.header("Content-Type") == HTTP_INTEGRATION
    assert answer.body == (
        b'{"statusCode":201,"headers":{"content-type":"text/html"},"cookies":["a=b"]}'
        + b"\0" * 8
        + "<h1>é</h1>".encode()
        + b"\0\n"
    )


def test_a_python_error_after_the_first_chunk_is_in_the_trailers(sor: Any) -> None:
    s = sor(PYTHON.format("fails_after"))
    answer = _streamed(s.server.invoke({}))
    assert answer.body == b"partial"
    assert answer.error_type == "ValueError"
    assert answer.error()["errorMessage"] == "mid-stream"


def test_a_python_error_before_the_first_chunk_is_an_ordinary_error(sor: Any) -> None:
    s = sor(PYTHON.format("fails_first"))
    answer = s.server.invoke({})
    assert not isinstance(answer, StreamedAnswer) and answer.kind == "error"
    assert json.loads(answer.body)["errorMessage"] == "before the stream"


def test_a_python_stream_that_runs_past_its_time_ends_with_sor_timeout(sor: Any) -> None:
    s = sor(PYTHON.format("hangs"))
    answer = _streamed(s.server.invoke({}, timeout=2.0))
    assert answer.body == b"started" and answer.error_type == "Sor.Timeout"
    again = _streamed(s.server.invoke({}, timeout=2.0))  # a fresh runtime serves the next one
    assert again.body == b"started"


def test_bash_stream_functions_through_sor_run(sor: Any) -> None:
    s = sor(BASH.format("sse"))
    answer = _streamed(s.server.invoke({}))
    prelude, body = answer.prelude()
    assert prelude == {
        "statusCode": 200,
        "headers": {"content-type": "text/event-stream"},
        "cookies": ["s=1"],
    }
    assert body == b"data: one\n\n\0\1\2\n"


def test_a_bash_failure_mid_stream_is_in_the_trailers(sor: Any) -> None:
    s = sor(BASH.format("fails"))
    answer = _streamed(s.server.invoke({}))
    assert answer.body == b"partial" and answer.error_type == "Runtime.ExitError"
