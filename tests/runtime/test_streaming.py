"""Response streaming through `sor run` (SPEC "Response streaming"): a real `sor run` process,
the scripted exec runtime of tests/support/stream_adapter.py, and a Runtime API server that
records the wire (tests/support/stream_api.py)."""

from __future__ import annotations

import base64
import io
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.stream_api import HTTP_INTEGRATION, StreamedAnswer
from support.stream_run import ADAPTER, CONFIG, SorRun

from sor.config.model import RuntimeSettings
from sor.logs import Log
from sor.runtime.answer import Stream, post
from sor.runtime.api import RuntimeApiClient, RuntimeApiError
from sor.runtime.language import LanguageRuntime

TRAILER = "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
MIB = 1024 * 1024


@pytest.fixture
def sor(tmp_path: Path) -> Iterator[Any]:
    started: list[SorRun] = []

    def start(**options: Any) -> SorRun:
        started.append(SorRun(tmp_path, **options))
        return started[-1]

    yield start
    for run in started:
        run.stop()


def _streamed(answer: Any) -> StreamedAnswer:
    assert isinstance(answer, StreamedAnswer), (answer.kind, answer.headers, answer.body[:300])
    assert answer.problems == []
    return answer


def test_chunks_leave_as_the_handler_writes_them(sor: Any) -> None:
    s = sor()
    answer = _streamed(
        s.invoke(
            [
                {"open": {"contentType": "text/event-stream"}},
                {"chunk": "data: one\n\n"},
                {"sleep": 0.3},
                {"chunk": "data: two\n\n"},
                {"sleep": 0.3},
                {"stamp": True},  # when the adapter wrote its last chunk, on the same clock
                {"end": True},
            ]
        )
    )
    assert answer.header("Lambda-Runtime-Function-Response-Mode") == "streaming"
    assert answer.header("Transfer-Encoding") == "chunked"
    assert answer.header("Trailer") == TRAILER
    assert answer.header("Content-Type") == "text/event-stream"
    assert answer.trailers == {}
    data = [c.data for c in answer.chunks]
    assert data[:2] == [b"data: one\n\n", b"data: two\n\n"]
    last_written = float(data[2])
    # The first chunk was on the wire before the handler even wrote the last one.
    assert answer.chunks[0].at < answer.chunks[1].at < last_written <= answer.chunks[2].at
    assert s.invoke().json() == {"plain": True}  # the runtime serves the next invocation
    line = s.log_lines()[0]
    assert "outcome=success" in line and "stream=True" in line
    assert f"size={22 + len(data[2])}" in line and "chunks=3" in line


def test_http_prelude_bytes_are_exact(sor: Any) -> None:
    prelude = {"statusCode": 201, "headers": {"content-type": "text/html"}, "cookies": ["a=b"]}
    answer = _streamed(
        sor().invoke([{"open": {"prelude": prelude}}, {"chunk": "<h1>é</h1>"}, {"end": True}])
    )
    assert answer.header("Content-Type") == HTTP_INTEGRATION
    assert answer.body == (
        b'{"statusCode":201,"headers":{"content-type":"text/html"},"cookies":["a=b"]}'
        + b"\0" * 8
        + "<h1>é</h1>".encode()
    )
    assert answer.prelude() == (prelude, "<h1>é</h1>".encode())


def test_default_content_type_and_an_empty_stream(sor: Any) -> None:
    answer = _streamed(sor().invoke([{"open": {}}, {"end": True}]))
    assert answer.header("Content-Type") == "application/octet-stream"
    assert answer.chunks == [] and answer.body == b"" and answer.trailers == {}


def test_an_error_after_the_first_chunk_is_in_the_trailers(sor: Any) -> None:
    s = sor()
    error = {"errorType": "ValueError", "errorMessage": "half way", "stackTrace": ["at x"]}
    pending = s.server.submit({"steps": [{"open": {}}, {"chunk": "part"}, {"error": error}]})
    answer = _streamed(s.server.wait_answer(pending))
    assert answer.body == b"part"
    assert answer.error_type == "ValueError"
    assert answer.error() == {
        "errorMessage": "half way",
        "errorType": "ValueError",
        "requestId": pending.request_id,
        "stackTrace": ["at x"],
    }
    assert s.invoke().json() == {"plain": True}
    assert "outcome=ValueError (after the first byte)" in s.log_lines()[0]


def test_a_huge_error_after_the_first_chunk_is_shortened(sor: Any) -> None:
    error = {"errorType": "Big", "errorMessage": "m" * 5000, "stackTrace": ["line"] * 10000}
    answer = _streamed(sor().invoke([{"open": {}}, {"chunk": "a"}, {"error": error}]))
    assert answer.error_type == "Big"
    shortened = answer.error()
    assert shortened["stackTrace"] == [] and shortened["errorMessage"].startswith("m" * 1024)
    assert "shortened for the stream's trailers" in shortened["errorMessage"]
    assert len(answer.trailer("Lambda-Runtime-Function-Error-Body") or "") < 4096


@pytest.mark.parametrize(
    "steps",
    [
        [{"error": {"errorType": "Early", "errorMessage": "before all"}}],
        [{"open": {}}, {"error": {"errorType": "Early", "errorMessage": "no byte yet"}}],
    ],
    ids=["before the stream", "after stream, before a chunk"],
)
def test_an_error_before_the_first_chunk_is_an_ordinary_error(
    sor: Any, steps: list[dict[str, Any]]
) -> None:
    s = sor()
    answer = s.invoke(steps)
    assert not isinstance(answer, StreamedAnswer)
    assert answer.kind == "error" and answer.json()["errorType"] == "Early"
    assert s.invoke().json() == {"plain": True}


def test_a_graceful_timeout_mid_stream_is_a_timeout_trailer(sor: Any) -> None:
    s = sor()
    steps = [{"open": {}}, {"chunk": "started"}, {"sleep": 30}, {"chunk": "never"}]
    answer = _streamed(s.invoke(steps, timeout=2.0))
    assert answer.body == b"started"
    assert answer.error_type == "Sor.Timeout"
    assert "Task timed out" in answer.error()["errorMessage"]
    # The runtime was stopped; the next invocation starts it again and is answered.
    assert s.invoke().json() == {"plain": True}
    assert "restarting the exec language runtime" in s.stderr


def test_more_than_200_mib_ends_with_the_size_error(sor: Any) -> None:
    s = sor(keep=0)
    steps = [{"open": {}}, {"bytes": MIB, "times": 201}, {"end": True}]
    # A deadline far away: under load 200 MiB may take longer than the default 5 s.
    answer = _streamed(s.invoke(steps, timeout=120.0, wait=150.0))
    assert answer.error_type == "Function.ResponseSizeTooLarge", answer.error()
    assert answer.size == 200 * MIB and len(answer.chunks) == 200
    assert answer.error_type == "Function.ResponseSizeTooLarge"
    assert str(200 * MIB) in answer.error()["errorMessage"]
    assert s.invoke().json() == {"plain": True}  # restarted: its stream was abandoned


def test_a_runtime_that_dies_mid_stream(sor: Any) -> None:
    s = sor()
    answer = _streamed(s.invoke([{"open": {}}, {"chunk": "a"}, {"exit": 3}]))
    assert answer.body == b"a"
    assert answer.error_type == "Sor.RuntimeExited"
    assert "exit code 3" in answer.error()["errorMessage"]
    assert s.invoke().json() == {"plain": True}


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"chunk64": "not base64!"}, "not base64"),
        ({"chunk64": "YWJj="}, "not base64"),  # bad padding
        ({"raw": {"type": "chunk"}}, "data is missing"),
        ({"raw": {"type": "chunk", "data": 5}}, "data is a int"),
        ({"raw": {"type": "stream"}}, "sent a 'stream' inside an open stream"),
        ({"result": {"late": True}}, "sent a result inside an open stream"),
    ],
)
def test_a_malformed_stream_names_the_problem_in_the_trailers(
    sor: Any, bad: dict[str, Any], named: str
) -> None:
    s = sor()
    answer = _streamed(s.invoke([{"open": {}}, {"chunk": "ok"}, bad, {"end": True}]))
    assert answer.body == b"ok"
    assert answer.error_type == "Sor.RuntimeExited"
    assert "broke the protocol" in answer.error()["errorMessage"]
    assert named in answer.error()["errorMessage"]
    assert s.invoke().json() == {"plain": True}


@pytest.mark.parametrize(
    ("steps", "named"),
    [
        ([{"chunk": "x"}], "sent a 'chunk' before opening a stream"),
        ([{"end": True}], "sent a 'end' before opening a stream"),
        ([{"open": {"contentType": "a\nb"}}], "contentType"),
        ([{"open": {"prelude": [1]}}], "prelude is a list"),
        ([{"open": {"prelude": {}, "contentType": "x"}}], "both contentType and prelude"),
    ],
)
def test_a_malformed_opening_is_an_ordinary_error(
    sor: Any, steps: list[dict[str, Any]], named: str
) -> None:
    s = sor()
    answer = s.invoke(steps)
    assert answer.kind == "error" and not isinstance(answer, StreamedAnswer)
    assert answer.json()["errorType"] == "Sor.RuntimeExited"
    assert named in answer.json()["errorMessage"]
    assert s.invoke().json() == {"plain": True}


def test_a_chunk_over_one_mib_is_refused(sor: Any) -> None:
    s = sor()
    data = base64.b64encode(b"y" * (MIB + 1)).decode()
    answer = _streamed(s.invoke([{"open": {}}, {"chunk": "a"}, {"chunk64": data}]))
    assert answer.error_type == "Sor.RuntimeExited"
    assert f"a chunk of {MIB + 1} bytes" in answer.error()["errorMessage"]


def test_a_runtime_api_that_fails_mid_stream_abandons_the_stream(tmp_path: Path) -> None:
    # In process: the language runtime's stream posted to a server that hangs up after the
    # head and a few bytes. post raises RuntimeApiError and the runtime, out of step, is stopped.
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:
        conn, _ = listener.accept()
        received = b""
        while b"\r\n\r\n" not in received:
            received += conn.recv(65536)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    settings = RuntimeSettings(language="exec", command=(sys.executable, str(ADAPTER)))
    runtime = LanguageRuntime(settings, task_root=tmp_path, env={}, log=Log(io.StringIO()))
    runtime.start(time.monotonic() + 10)
    steps = [{"open": {}}, {"bytes": MIB, "times": 50}, {"end": True}]
    stream = runtime.invoke({"steps": steps}, {"aws_request_id": "r"}, time.monotonic() + 30)
    assert isinstance(stream, Stream) and runtime.running
    api = RuntimeApiClient(f"127.0.0.1:{listener.getsockname()[1]}", retry_delays=())
    try:
        with pytest.raises(RuntimeApiError, match="after the request was sent"):
            post(api, "r", stream)
        assert not runtime.running  # abandoned: the next invocation starts it again
        assert runtime.invoke({"n": 1}, {"aws_request_id": "s"}, time.monotonic() + 10).value() == {
            "n": 1
        }
    finally:
        runtime.stop()
        api.close()
        listener.close()


@pytest.mark.parametrize("refused_by", ["cloudevent signature", "after hook"])
def test_a_stream_refused_before_its_first_pull_frees_the_runtime(
    tmp_path: Path, refused_by: str
) -> None:
    # Closing a generator before its first pull runs no `finally`: the body is started at once
    # (answer.started), so the runtime still writing the refused stream is stopped, and the
    # next invocation is not left behind it until its deadline.
    config = CONFIG
    if refused_by == "cloudevent signature":
        config = config.replace("  language: exec\n", "  language: exec\n  signature: cloudevent\n")
    else:
        hook = tmp_path / "bad_after"
        hook.write_text(  # fails the first call only
            '#!/bin/sh\ncat >/dev/null\n[ -e "$0.failed" ] && exit 0\ntouch "$0.failed"\nexit 3\n'
        )
        hook.chmod(0o755)
        config += "middlewares:\n  - name: bad\n    path: ./bad_after\n    hooks: [after]\n"
    run = SorRun(tmp_path, config)
    try:
        steps = [{"open": {}}, {"chunk": "a"}, {"sleep": 6}, {"chunk": "b"}, {"end": True}]
        first = run.invoke(steps)
        assert first.kind == "error"
        second = run.invoke(timeout=4)
        assert second.kind == "response", second.body[:300]
    finally:
        run.stop()
