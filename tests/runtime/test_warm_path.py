"""The shortcuts of the warm path give exactly what the general code gives: a result line read
without decoding the whole line, the invoke's context encoded with a prebuilt encoder, values
built past their generic constructors, and the two requests of every invocation encoded once."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from sor.http.client import encode_request
from sor.payload import RawJson, encode
from sor.runtime import protocol
from sor.runtime.api import Invocation, RuntimeApiClient
from sor.runtime.context import Deadlines, deadlines

ID, SEAL = "8f5c-1", "0123456789abcdef0123456789abcdef"
HEAD = b'{"type":"result","id":"8f5c-1","seal":"0123456789abcdef0123456789abcdef","result":'


def _whole(line: bytes) -> bytes | str | None:
    """What the answer to ``line`` is when the whole line is decoded first (`read_answer` before
    its shortcut): the result's bytes, None (not this invocation's answer) or "broken"."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return "broken"
    if not isinstance(message, dict):
        return "broken"
    if message.get("id") != ID or message.get("seal") != SEAL:
        return None
    assert message.get("type") == "result"
    body = line.rstrip()
    if body.startswith(HEAD) and body.endswith(b"}"):
        return body[len(HEAD) : -1]  # the value's own bytes
    return encode(message.get("result"))


@pytest.mark.parametrize(
    "value",
    [
        b'{"ok": true, "n": 5}',
        b"null",
        b'"caf\xc3\xa9 \\ud800"',
        b"1e400",
        b"[1,2,3]  ",  # white space before the closing brace
        b' {"a":1}',  # white space before the value
        b'1,"id":"other"',  # a repeated member overriding the id
        b'1,"seal":"0000"',  # ... or the seal
        b'1,"extra":2',
        b"{bad}",
        b'"\xed\xa0\x80"',  # a surrogate in UTF-8 form: json.loads reads it (surrogatepass)
        b"\xff",
        b"",
        b"[" * 100_000 + b"]" * 100_000,  # nested too deeply
    ],
)
def test_a_result_line_reads_as_the_whole_decoded_line_reads(value: bytes) -> None:
    line = HEAD + value + b"}"
    try:
        answer = protocol.read_answer(line, ID, SEAL)
    except protocol.Broken:
        got: bytes | str | None = "broken"
    else:
        got = answer.text if isinstance(answer, RawJson) else None
    assert got == _whole(line)


def test_a_result_line_with_a_wrong_seal_or_id_is_not_the_answer() -> None:
    assert protocol.read_answer(HEAD + b"1}", ID, "f" * 32) is None
    assert protocol.read_answer(HEAD + b"1}", "other", SEAL) is None
    unsealed = b'{"type":"result","id":"8f5c-1","result":1}'
    assert isinstance(protocol.read_answer(unsealed, ID, None), RawJson)  # protocol 1, no seal


@pytest.mark.parametrize(
    "context",
    [
        {"aws_request_id": ID, "deadline_ms": 1, "client_context": {"a": [1.5, None]}},
        {"x": "caf\u00e9 \u2028"},
        {"nan": float("nan"), "inf": float("inf")},  # null, as encode writes them
        {"lone": "\ud800"},  # escaped, as encode writes it
    ],
)
def test_the_invoke_context_is_encoded_as_encode_does(context: dict[str, object]) -> None:
    line = protocol.invoke_line(ID, RawJson(b'{"n":1}'), context, None, SEAL)
    assert b',"context":' + encode(context) + b',"seal":' in line


def test_values_built_at_every_invocation_equal_their_constructors() -> None:
    d = deadlines(2_000_000, 0.3, now_epoch=1000.0, now_mono=50.0, function_timeout=None)
    built = Deadlines(
        d.lambda_, d.soft, d.hard, d.soft_epoch_ms, d.function_timeout, d.grace
    )  # the generic constructor
    assert d == built and hash(d) == hash(built) and repr(d) == repr(built)
    with pytest.raises(AttributeError):
        d.soft = 0.0  # type: ignore[misc]
    headers = {
        "Lambda-Runtime-Aws-Request-Id": ID,
        "lambda-runtime-deadline-ms": "123",
        "Lambda-Runtime-Trace-Id": "Root=1",
        "Content-Type": "application/json",
    }
    inv = Invocation.from_response(headers, b"{}")
    expected = Invocation(
        request_id=ID,
        event=b"{}",
        deadline_ms=123,
        trace_id="Root=1",
        content_type="application/json",
        headers=headers,
    )
    assert inv == expected and repr(inv) == repr(expected)
    assert inv.headers is not headers  # its own copy
    with pytest.raises(AttributeError):
        inv.event = b""  # type: ignore[misc]


def test_next_and_respond_send_the_bytes_encode_request_makes() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{server.getsockname()[1]}"
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            answers = [
                b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r\xe9-1\r\n"
                b"Lambda-Runtime-Deadline-Ms: 5\r\nContent-Length: 2\r\n\r\n{}",
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
            ]
            for answer in answers:
                data = b""
                while b"\r\n\r\n" not in data or (
                    b"POST" in data and not data.endswith(b'{"ok":1}')
                ):
                    data += conn.recv(65536)
                received.append(data)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = RuntimeApiClient(address)
    try:
        inv = client.next()
        assert inv.request_id == "r\u00e9-1" and inv.deadline_ms == 5
        assert client.respond(inv.request_id, b'{"ok":1}') == 202
    finally:
        client.close()
        thread.join(5)
        server.close()
    base = "/2018-06-01/runtime/invocation"
    assert received == [
        encode_request("GET", f"{base}/next", address, {"User-Agent": "sor"}, None),
        encode_request(
            "POST",
            f"{base}/r\u00e9-1/response",
            address,
            {"User-Agent": "sor", "Content-Type": "application/json"},
            b'{"ok":1}',
        ),
    ]
