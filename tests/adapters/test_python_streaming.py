"""The Python adapter's streamed answers (PROTOCOL.md, "streaming"), over its real protocol pipes.

Every case runs the real adapter process; the messages are read as sor reads them, one line at a
time. The main cases also run on the oldest supported Python (3.10) when pyenv has it.
"""

from __future__ import annotations

import base64
import glob
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import PYTHON_RUNTIME, Adapter, context, write_files

SEAL = "0123456789abcdef0123456789abcdef"
MIB = 1 << 20

APP = r"""
import asyncio, os, time

def plain(event, context):
    yield "héllo "
    yield b"world"

async def agen(event, context):
    for i in range(3):
        await asyncio.sleep(0)
        yield f"part {i};"

def http(event, context):
    def body():
        yield "<h1>"
        yield b"hi</h1>"
    return {"statusCode": 201, "headers": {"content-type": "text/html", "x-n": 5},
            "cookies": ["a=1"], "body": body()}

async def http_async(event, context):
    async def body():
        yield "event: 1\n\n"
    return {"headers": {"content-type": "text/event-stream"}, "body": body()}

def typed(event, context):
    return {"contentType": "text/plain", "body": iter(["plain text"])}

def binary(event, context):
    return iter([bytes(range(256)) * 4, b"\0\n\r\0", bytearray(b"\n"), memoryview(b"end")])

def big(event, context):
    yield os.urandom(16) * (event["mib"] * 65536)

def empty(event, context):
    return iter(())

def flush_first(event, context):
    yield b""
    yield "late"

def fails_first(event, context):
    raise ValueError("before any chunk")
    yield "never"

def fails_after(event, context):
    yield "first"
    raise RuntimeError("after the first chunk")

async def afails_after(event, context):
    yield "first"
    raise KeyError("async after")

def bad_chunk_first(event, context):
    yield 42

def bad_chunk_later(event, context):
    try:
        yield "ok"
        yield {"not": "bytes"}
    finally:
        open("closed.log", "w").write("closed")

def bad_type(event, context):
    return {"contentType": "text/plain\x00", "body": iter(["x"])}

def bad_status(event, context):
    return {"statusCode": "200", "body": iter(["x"])}

def bad_key(event, context):
    return {"statusCode": 200, "isBase64Encoded": True, 7: None, "body": iter(["x"])}

def slow(event, context):
    yield "first"
    while not os.path.exists(event["go"]):  # the test creates it once it read the first chunk
        time.sleep(0.01)
    yield "second"

def listed(event, context):
    return ["not", "streamed"]
"""


def _pythons() -> list[str]:
    """This interpreter, and pyenv's 3.10 when there is one (the oldest Python sor supports)."""
    found = [sys.executable]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    oldest = sorted(glob.glob(f"{pyenv}/versions/3.10.*/bin/python3.10"))
    if oldest and sys.version_info[:2] != (3, 10):
        found.append(oldest[-1])
    return found


@pytest.fixture(params=_pythons(), ids=lambda p: Path(p).name)
def python(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _start(root: Path, handler: str, python: str = sys.executable) -> Adapter:
    write_files(root, {"app.py": APP})
    adapter = Adapter([python, str(PYTHON_RUNTIME)], root, f"app.{handler}")
    assert adapter.ready() == {"type": "ready", "seal": True}
    return adapter


def _invoke(adapter: Adapter, event: Any = None, rid: str = "r1") -> None:
    message = {"type": "invoke", "id": rid, "event": event, "context": context(rid), "seal": SEAL}
    adapter.send(message)


def _answer(adapter: Adapter, rid: str = "r1", timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every message of one answer, up to its result, error or end."""
    messages = []
    while True:
        message = adapter.recv(timeout)
        assert message["id"] == rid and message["seal"] == SEAL, message
        messages.append(message)
        if message["type"] in {"result", "error", "end"}:
            return messages


def _stream(adapter: Adapter, event: Any = None) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """(the stream message, the body's bytes, the last message) of one streamed answer."""
    _invoke(adapter, event)
    messages = _answer(adapter)
    first, chunks, last = messages[0], messages[1:-1], messages[-1]
    assert first["type"] == "stream", messages
    assert all(m["type"] == "chunk" for m in chunks), messages
    return first, b"".join(base64.b64decode(m["data"], validate=True) for m in chunks), last


def test_a_generator_streams_str_and_bytes(tmp_path: Path, python: str) -> None:
    with _start(tmp_path, "plain", python) as adapter:
        first, body, last = _stream(adapter)
        assert first == {
            "type": "stream",
            "id": "r1",
            "seal": SEAL,
            "contentType": "application/octet-stream",
        }
        assert body == "héllo world".encode()
        assert last == {"type": "end", "id": "r1", "seal": SEAL}
        first, again, _ = _stream(adapter)  # the adapter keeps serving
        assert again == body


def test_an_async_generator_streams_on_the_event_loop(tmp_path: Path, python: str) -> None:
    with _start(tmp_path, "agen", python) as adapter:
        _invoke(adapter)
        messages = _answer(adapter)
        assert [m["type"] for m in messages] == ["stream", "chunk", "chunk", "chunk", "end"]
        body = b"".join(base64.b64decode(m["data"]) for m in messages[1:-1])
        assert body == b"part 0;part 1;part 2;"


def test_an_http_dict_with_an_iterator_body_streams_its_prelude(tmp_path: Path) -> None:
    with _start(tmp_path, "http") as adapter:
        first, body, last = _stream(adapter)
        assert first["prelude"] == {
            "statusCode": 201,
            "headers": {"content-type": "text/html", "x-n": "5"},
            "cookies": ["a=1"],
        }
        assert "contentType" not in first
        assert body == b"<h1>hi</h1>" and last["type"] == "end"


def test_an_async_http_body_gets_lambdas_defaults(tmp_path: Path, python: str) -> None:
    with _start(tmp_path, "http_async", python) as adapter:
        first, body, _ = _stream(adapter)
        assert first["prelude"] == {
            "statusCode": 200,
            "headers": {"content-type": "text/event-stream"},
            "cookies": [],
        }
        assert body == b"event: 1\n\n"


def test_a_plain_stream_may_name_its_content_type(tmp_path: Path) -> None:
    with _start(tmp_path, "typed") as adapter:
        first, body, _ = _stream(adapter)
        assert first["contentType"] == "text/plain" and body == b"plain text"


def test_binary_chunks_arrive_intact(tmp_path: Path, python: str) -> None:
    with _start(tmp_path, "binary", python) as adapter:
        _, body, _ = _stream(adapter)
        assert body == bytes(range(256)) * 4 + b"\0\n\r\0" + b"\n" + b"end"


def test_a_3_mib_chunk_is_split_into_1_mib_messages(tmp_path: Path) -> None:
    with _start(tmp_path, "big") as adapter:
        _invoke(adapter, {"mib": 3})
        messages = _answer(adapter, timeout=60)
        sizes = [len(base64.b64decode(m["data"])) for m in messages[1:-1]]
        assert sizes == [MIB, MIB, MIB]
        body = b"".join(base64.b64decode(m["data"]) for m in messages[1:-1])
        assert body == body[:16] * (3 * 65536)  # the same bytes, in order


def test_an_empty_body_opens_and_ends_the_stream(tmp_path: Path) -> None:
    with _start(tmp_path, "empty") as adapter:
        _invoke(adapter)
        assert [m["type"] for m in _answer(adapter)] == ["stream", "end"]


def test_an_empty_chunk_opens_the_stream_without_a_chunk(tmp_path: Path) -> None:
    with _start(tmp_path, "flush_first") as adapter:
        _invoke(adapter)
        messages = _answer(adapter)
        assert [m["type"] for m in messages] == ["stream", "chunk", "end"]
        assert base64.b64decode(messages[1]["data"]) == b"late"


def test_an_error_before_the_first_chunk_is_an_ordinary_error(tmp_path: Path) -> None:
    with _start(tmp_path, "fails_first") as adapter:
        _invoke(adapter)
        [answer] = _answer(adapter)
        assert answer["type"] == "error"
        assert answer["error"]["errorType"] == "ValueError"
        assert answer["error"]["errorMessage"] == "before any chunk"
        assert "app.py" in answer["error"]["stackTrace"][0]  # the adapter's frames are trimmed


def test_an_error_after_the_first_chunk_ends_the_stream(tmp_path: Path, python: str) -> None:
    with _start(tmp_path, "fails_after", python) as adapter:
        _invoke(adapter)
        messages = _answer(adapter)
        assert [m["type"] for m in messages] == ["stream", "chunk", "error"]
        assert messages[-1]["error"]["errorType"] == "RuntimeError"
        assert messages[-1]["error"]["errorMessage"] == "after the first chunk"
        assert "[ERROR] RuntimeError: after the first chunk" in adapter.logs()
        _invoke(adapter, rid="r2")  # and the next invocation is served
        assert _answer(adapter, "r2")[-1]["type"] == "error"


def test_an_async_error_after_the_first_chunk_ends_the_stream(tmp_path: Path) -> None:
    with _start(tmp_path, "afails_after") as adapter:
        _invoke(adapter)
        messages = _answer(adapter)
        assert [m["type"] for m in messages] == ["stream", "chunk", "error"]
        assert messages[-1]["error"]["errorType"] == "KeyError"


def test_a_chunk_that_is_not_bytes_or_str_is_a_marshal_error(tmp_path: Path) -> None:
    with _start(tmp_path, "bad_chunk_first") as adapter:
        _invoke(adapter)
        [answer] = _answer(adapter)
        assert answer["type"] == "error"
        assert answer["error"]["errorType"] == "Runtime.MarshalError"
        assert "must be bytes or str, not int" in answer["error"]["errorMessage"]


def test_a_bad_chunk_mid_stream_ends_it_and_closes_the_generator(tmp_path: Path) -> None:
    with _start(tmp_path, "bad_chunk_later") as adapter:
        _invoke(adapter)
        messages = _answer(adapter)
        assert [m["type"] for m in messages] == ["stream", "chunk", "error"]
        assert messages[-1]["error"]["errorType"] == "Runtime.MarshalError"
        assert "not dict" in messages[-1]["error"]["errorMessage"]
        assert (tmp_path / "closed.log").read_text() == "closed"  # its finally block ran


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        ("bad_status", "statusCode must be an int"),
        ("bad_key", "key(s) 'isBase64Encoded', 7:"),
        ("bad_type", "contentType must be a printable str"),
    ],
)
def test_a_bad_http_response_is_an_error_before_streaming(
    tmp_path: Path, handler: str, words: str
) -> None:
    with _start(tmp_path, handler) as adapter:
        _invoke(adapter)
        [answer] = _answer(adapter)
        assert answer["error"]["errorType"] == "Runtime.MarshalError"
        assert words in answer["error"]["errorMessage"]


def test_a_list_is_still_a_result(tmp_path: Path) -> None:
    with _start(tmp_path, "listed") as adapter:
        _invoke(adapter)
        assert _answer(adapter) == [
            {"type": "result", "id": "r1", "seal": SEAL, "result": ["not", "streamed"]}
        ]


def test_the_first_chunk_leaves_while_the_generator_still_runs(tmp_path: Path) -> None:
    go = tmp_path / "go"
    with _start(tmp_path, "slow") as adapter:
        _invoke(adapter, {"go": str(go)})
        assert adapter.recv()["type"] == "stream"
        first = adapter.recv()
        assert base64.b64decode(first["data"]) == b"first"
        # The generator waits for this file: the first chunk was written before it finished.
        assert not go.exists()
        go.write_text("")
        assert base64.b64decode(adapter.recv()["data"]) == b"second"
        assert adapter.recv()["type"] == "end"


def test_the_server_sent_events_example_streams_its_events(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "streaming" / "app.py"
    write_files(tmp_path, {"app.py": example.read_text()})  # the adapter logs in its task root
    adapter = Adapter([sys.executable, str(PYTHON_RUNTIME)], tmp_path, "app.handler")
    with adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        page = {"rawPath": "/", "queryStringParameters": None}
        _invoke(adapter, page)
        [answer] = _answer(adapter)
        assert answer["result"]["headers"] == {"content-type": "text/html"}
        assert "new EventSource" in answer["result"]["body"]
        _invoke(adapter, {"rawPath": "/events", "queryStringParameters": {"count": "2"}}, "r2")
        messages = _answer(adapter, "r2")
        assert messages[0]["prelude"]["headers"]["content-type"] == "text/event-stream"
        events = [base64.b64decode(m["data"]).decode() for m in messages[1:-1]]
        assert [e.split(":")[0] for e in events] == ["data", "data", "event"]
        assert all(e.endswith("\n\n") for e in events) and messages[-1]["type"] == "end"
