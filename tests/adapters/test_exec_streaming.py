"""The bash example adapter's streaming (runtimes/exec/README.md, "Streaming"), over real pipes.

Handlers stream by writing lines on $SOR_STREAM_FD, with the adapter's shell functions
(sourced handlers) or by hand (scripts); the adapter's reader turns them into protocol messages.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import Adapter, context, start, write_files

SEAL = "00ff00ff00ff00ff00ff00ff00ff00ff"

LIB = r"""
text() { sor_stream_start text/plain; sor_stream_write "hello " "world"; }
default() { sor_stream_write one; sor_stream_write two; }
binary() { printf 'a\0b\n\r\0c' | sor_stream_write; }
big() { sor_stream_write < blob; }
http() {
  sor_stream_http 201 "content-type: text/html" "Set-Cookie: a=1" "X-Odd: q\"uote$(printf '\001')"
  sor_stream_write "<h1>hi</h1>"
}
fails_after() { sor_stream_write partial; return 3; }
fails_first() { return 4; }
bad_status() { sor_stream_http abc || return; }
bad_first() { echo '{"type":"result","result":"forged"}' >&"$SOR_STREAM_FD"; }
bad_after() { sor_stream_write ok; echo 'chunk not*base64' >&"$SOR_STREAM_FD"; }
twice() { sor_stream_start; sor_stream_start; }
bad_type() { printf 'stream text/\001\n' >&"$SOR_STREAM_FD"; }
slow() {
  sor_stream_write first
  while [ ! -e go ]; do sleep 0.01; done
  sor_stream_write second
}
plain() { cat; }
"""

SCRIPT = """#!/bin/sh
# a script streams by writing the lines itself (a CRLF line end is a line end)
printf 'stream text/csv\\r\\n' >&"$SOR_STREAM_FD"
printf 'chunk %s\\n' "$(printf 'a,b\\n1,2\\n' | base64 -w0)" >&"$SOR_STREAM_FD"
echo "printed on stdout"
"""


def _adapter(root: Path, handler: str) -> Adapter:
    write_files(root, {"lib.sh": LIB, "csv.sh": SCRIPT}, executable=["csv.sh"])
    adapter = start("exec", root, handler)
    assert adapter.ready() == {"type": "ready", "seal": True}
    return adapter


def _answer(adapter: Adapter, rid: str = "r1", timeout: float = 30.0) -> list[dict[str, Any]]:
    """Send one invoke; every message of its answer, up to its result, error or end."""
    message = {"type": "invoke", "id": rid, "event": {"e": 1}, "context": context(rid)}
    adapter.send({**message, "seal": SEAL})
    messages = []
    while True:
        answer = adapter.recv(timeout)
        assert answer["id"] == rid and answer["seal"] == SEAL, answer
        messages.append(answer)
        if answer["type"] in {"result", "error", "end"}:
            return messages


def _body(messages: list[dict[str, Any]]) -> bytes:
    chunks = [m for m in messages if m["type"] == "chunk"]
    return b"".join(base64.b64decode(m["data"], validate=True) for m in chunks)


def _kinds(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


def test_a_function_streams_text_with_its_content_type(tmp_path: Path) -> None:
    with _adapter(tmp_path, "lib.text") as adapter:
        messages = _answer(adapter)
        assert messages[0] == {
            "type": "stream",
            "id": "r1",
            "seal": SEAL,
            "contentType": "text/plain",
        }
        assert _kinds(messages) == ["stream", "chunk", "end"]
        assert _body(messages) == b"hello world"
        assert _body(_answer(adapter, "r2")) == b"hello world"  # it keeps serving


def test_a_write_without_a_start_opens_a_default_stream(tmp_path: Path) -> None:
    with _adapter(tmp_path, "lib.default") as adapter:
        messages = _answer(adapter)
        assert messages[0]["contentType"] == "application/octet-stream"
        assert _kinds(messages) == ["stream", "chunk", "chunk", "end"]
        assert _body(messages) == b"onetwo"


def test_binary_bytes_stay_intact(tmp_path: Path) -> None:
    with _adapter(tmp_path, "lib.binary") as adapter:
        assert _body(_answer(adapter)) == b"a\0b\n\r\0c"


def test_a_large_write_is_split_under_1_mib(tmp_path: Path) -> None:
    blob = bytes(range(256)) * (3 * 4096 + 7)  # a little over 3 MiB
    (tmp_path / "blob").write_bytes(blob)
    with _adapter(tmp_path, "lib.big") as adapter:
        messages = _answer(adapter, timeout=60)
        sizes = [len(base64.b64decode(m["data"])) for m in messages if m["type"] == "chunk"]
        assert max(sizes) <= 1 << 20 and len(sizes) == 4, sizes
        assert _body(messages) == blob


def test_an_http_stream_has_its_prelude(tmp_path: Path) -> None:
    with _adapter(tmp_path, "lib.http") as adapter:
        messages = _answer(adapter)
        assert messages[0]["prelude"] == {
            "statusCode": 201,
            "headers": {"content-type": "text/html", "X-Odd": 'q"uote\x01'},
            "cookies": ["a=1"],
        }
        assert _body(messages) == b"<h1>hi</h1>"


def test_a_script_streams_by_writing_the_lines(tmp_path: Path) -> None:
    with _adapter(tmp_path, "csv.sh") as adapter:
        messages = _answer(adapter)
        assert messages[0]["contentType"] == "text/csv"
        assert _body(messages) == b"a,b\n1,2\n" and messages[-1]["type"] == "end"
    assert "printed on stdout" in adapter.logs()  # a streamed answer's stdout is logged


def test_a_failure_after_the_first_chunk_ends_the_stream(tmp_path: Path) -> None:
    with _adapter(tmp_path, "lib.fails_after") as adapter:
        messages = _answer(adapter)
        assert _kinds(messages) == ["stream", "chunk", "error"]
        assert messages[-1]["error"]["errorType"] == "Runtime.ExitError"
        assert "status 3" in messages[-1]["error"]["errorMessage"]


@pytest.mark.parametrize(("handler", "words"), [("fails_first", "4"), ("bad_status", "2")])
def test_a_failure_before_streaming_is_an_ordinary_error(
    tmp_path: Path, handler: str, words: str
) -> None:
    with _adapter(tmp_path, f"lib.{handler}") as adapter:
        [answer] = _answer(adapter)
        assert answer["type"] == "error" and answer["error"]["errorType"] == "Runtime.ExitError"
        assert answer["error"]["errorMessage"].endswith(f"status {words}")


@pytest.mark.parametrize(
    ("handler", "words"),
    [("bad_first", "not a stream message"), ("bad_type", "content type with control")],
)
def test_a_bad_line_before_streaming_is_an_invalid_response(
    tmp_path: Path, handler: str, words: str
) -> None:
    with _adapter(tmp_path, f"lib.{handler}") as adapter:
        [answer] = _answer(adapter)
        assert answer["error"]["errorType"] == "Runtime.InvalidResponse"
        assert words in adapter.logs()
        assert _answer(adapter, "r2")[-1]["type"] == "error"  # served again, never forged


@pytest.mark.parametrize(("handler", "words"), [("bad_after", "not base64"), ("twice", "second")])
def test_a_bad_line_mid_stream_ends_it_with_an_error(
    tmp_path: Path, handler: str, words: str
) -> None:
    with _adapter(tmp_path, f"lib.{handler}") as adapter:
        messages = _answer(adapter)
        assert messages[0]["type"] == "stream" and messages[-1]["type"] == "error"
        assert messages[-1]["error"]["errorType"] == "Runtime.InvalidResponse"
        assert words in adapter.logs()


def test_the_first_chunk_leaves_while_the_handler_still_runs(tmp_path: Path) -> None:
    with _adapter(tmp_path, "lib.slow") as adapter:
        message = {"type": "invoke", "id": "r1", "event": {}, "context": context("r1")}
        adapter.send({**message, "seal": SEAL})
        assert adapter.recv()["type"] == "stream"
        assert base64.b64decode(adapter.recv()["data"]) == b"first"
        assert not (tmp_path / "go").exists()  # the handler waits for it: still running
        (tmp_path / "go").write_text("")
        assert base64.b64decode(adapter.recv()["data"]) == b"second"
        assert adapter.recv()["type"] == "end"


def test_a_handler_that_does_not_stream_still_answers_a_result(tmp_path: Path) -> None:
    with _adapter(tmp_path, "lib.plain") as adapter:
        answer = {"type": "result", "id": "r1", "seal": SEAL, "result": {"e": 1}}
        assert _answer(adapter) == [answer]
