"""Streamed answers through the embedded emulator: on the invoke endpoint, on function URLs, to
`sor local invoke`'s printer, and what the runtime is answered.

The bootstrap is a real process, tests/support/raw_bootstrap.py: a Runtime API client over raw
sockets that streams (chunks, prelude, trailers). "Streams" is shown by a handshake, not a
timing: the bootstrap sends its last chunk only once the test has read the first bytes and
written to a FIFO.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from support.emulated import (
    INVOKE_PATH,
    Served,
    dechunk,
    fifo_gate,
    head,
    http_request,
    open_gate,
    read_all,
    read_until,
    written,
)

from sor.commands.local_invoke import print_stream


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.close()


def test_the_invoke_endpoint_passes_a_stream_on_as_it_arrives(
    served: Served, tmp_path: Path
) -> None:
    gate, status_file = fifo_gate(tmp_path), tmp_path / "status"
    spec = {"action": "stream", "chunks": ["first|", "second|", "last"], "gate": str(gate)}
    spec |= {"content_type": "text/event-stream", "status_file": str(status_file)}
    sock = served.connect(http_request("POST", INVOKE_PATH, json.dumps(spec).encode()))
    with sock:
        buffer = bytearray()
        read_until(sock, buffer, b"second|")  # before the bootstrap may send its last chunk
        open_gate(gate)
        raw = read_all(sock, buffer)
    status, headers, body = head(raw)
    assert status == 200
    assert ("content-type", "text/event-stream") in headers
    assert ("transfer-encoding", "chunked") in headers
    assert ("content-length" not in dict(headers)) and ("x-amz-function-error" not in dict(headers))
    data, trailers, complete = dechunk(body)
    assert (data, trailers, complete) == (b"first|second|last", {}, True)
    assert written(status_file) == "202"  # the runtime was answered as Lambda answers it


def test_an_error_after_the_first_byte_reaches_the_caller_in_trailers(
    served: Served, tmp_path: Path
) -> None:
    status_file = tmp_path / "status"
    spec = {"action": "stream", "chunks": ["partial"], "error": "Probe.Broken"}
    spec["status_file"] = str(status_file)
    with served.connect(http_request("POST", INVOKE_PATH, json.dumps(spec).encode())) as sock:
        raw = read_all(sock, bytearray())
    status, headers, body = head(raw)
    assert status == 200
    declared = {n.strip().lower() for n in dict(headers)["trailer"].split(",")}
    assert declared == {
        "x-amz-function-error",
        "lambda-runtime-function-error-type",
        "lambda-runtime-function-error-body",
    }
    data, trailers, complete = dechunk(body)
    assert data == b"partial" and complete
    assert trailers["x-amz-function-error"] == "Unhandled"
    assert trailers["lambda-runtime-function-error-type"] == "Probe.Broken"
    error = json.loads(base64.b64decode(trailers["lambda-runtime-function-error-body"]))
    assert error["errorType"] == "Probe.Broken" and error["errorMessage"] == "mid-stream"
    assert written(status_file) == "202"
    # and the bootstrap goes on serving
    with served.connect(http_request("POST", INVOKE_PATH, b'{"action": "echo", "n": 2}')) as sock:
        status, _, body = head(read_all(sock, bytearray()))
    assert (status, json.loads(body)) == (200, {"action": "echo", "n": 2})


def test_a_function_url_get_streams_an_http_stream(served: Served, tmp_path: Path) -> None:
    gate = fifo_gate(tmp_path)
    prelude = {
        "statusCode": 201,
        "headers": {"content-type": "text/html", "x-custom": "yes"},
        "cookies": ["a=1; Path=/", "b=2"],
    }
    spec = {"action": "stream", "prelude": prelude, "chunks": ["<p>one</p>", "<p>two</p>"]}
    spec["gate"] = str(gate)
    with served.connect(http_request("GET", "/page?spec=" + quote(json.dumps(spec)))) as sock:
        buffer = bytearray()
        read_until(sock, buffer, b"<p>one</p>")
        open_gate(gate)
        raw = read_all(sock, buffer)
    status, headers, body = head(raw)
    assert status == 201
    assert ("content-type", "text/html") in headers and ("x-custom", "yes") in headers
    assert [v for n, v in headers if n == "set-cookie"] == ["a=1; Path=/", "b=2"]
    data, _, complete = dechunk(body)
    assert (data, complete) == (b"<p>one</p><p>two</p>", True)  # the prelude is not in the body


def test_a_plain_stream_on_a_function_url_keeps_its_content_type(served: Served) -> None:
    spec = {"action": "stream", "chunks": ["data: 1\n\n", "data: 2\n\n"]}
    spec["content_type"] = "text/event-stream"
    with served.connect(http_request("GET", "/events?spec=" + quote(json.dumps(spec)))) as sock:
        status, headers, body = head(read_all(sock, bytearray()))
    assert status == 200 and ("content-type", "text/event-stream") in headers
    assert dechunk(body)[0] == b"data: 1\n\ndata: 2\n\n"


def test_an_error_mid_stream_cuts_a_function_url_response_short(served: Served) -> None:
    spec = {"action": "stream", "prelude": {"statusCode": 200}, "chunks": ["half"]}
    spec["error"] = "Probe.Broken"
    with served.connect(http_request("GET", "/x?spec=" + quote(json.dumps(spec)))) as sock:
        status, _, body = head(read_all(sock, bytearray()))
    assert status == 200
    data, _, complete = dechunk(body)
    assert data == b"half" and not complete  # no last chunk: the client sees it was cut short


def test_local_invoke_prints_a_stream_as_it_arrives(served: Served, tmp_path: Path) -> None:
    gate = fifo_gate(tmp_path)
    spec = {"action": "stream", "chunks": ["one\n", "two\n", "three"], "gate": str(gate)}
    spec["error"] = "Probe.Late"
    result = served.emulator.invoke(json.dumps(spec).encode())
    assert result.stream is not None
    read_end, write_end = os.pipe()
    codes: list[int] = []
    with open(write_end, "wb", buffering=0) as out:
        printer = threading.Thread(target=lambda: codes.append(print_stream(result.stream, out)))
        printer.start()
        with open(read_end, "rb", buffering=0) as pipe:
            seen = b""
            while b"two\n" not in seen:  # arrives before the bootstrap may send the last chunk
                seen += pipe.read(100)
            open_gate(gate)
            printer.join(30)
            out.close()
            seen += pipe.read()
    assert seen == b"one\ntwo\nthree\n"
    assert codes == [1]  # the stream ended in error: exit status 1 (the ERROR on stderr)


def test_a_timeout_mid_stream_ends_it_with_a_timeout_and_resets_the_runtime(
    tmp_path: Path,
) -> None:
    served = Served(tmp_path, timeout=1.0)
    gate = fifo_gate(tmp_path)  # never opened: the last chunk never comes
    try:
        pid = served.emulator.bootstrap_pid()
        spec = {"action": "stream", "chunks": ["begun", "never"], "gate": str(gate)}
        with served.connect(http_request("POST", INVOKE_PATH, json.dumps(spec).encode())) as sock:
            status, _, body = head(read_all(sock, bytearray()))
        data, trailers, complete = dechunk(body)
        assert (status, data, complete) == (200, b"begun", True)
        assert trailers["lambda-runtime-function-error-type"] == "Sandbox.Timedout"
        error = json.loads(base64.b64decode(trailers["lambda-runtime-function-error-body"]))
        assert error["errorMessage"] == "Task timed out after 1.00 seconds"
        echo = served.emulator.invoke(b'{"action": "echo"}')  # a new bootstrap serves it
        assert echo.body == b'{"action": "echo"}'
        assert served.emulator.bootstrap_pid() not in (None, pid)
    finally:
        served.close()


def test_a_caller_that_goes_mid_stream_leaves_the_runtime_answered(
    served: Served, tmp_path: Path
) -> None:
    gate, status_file = fifo_gate(tmp_path), tmp_path / "status"
    spec = {"action": "stream", "chunks": ["a" * 1000] * 40, "gate": str(gate)}
    spec["status_file"] = str(status_file)
    sock = served.connect(http_request("POST", INVOKE_PATH, json.dumps(spec).encode()))
    read_until(sock, bytearray(), b"aaaa")
    sock.close()  # gone before the end
    open_gate(gate)
    assert written(status_file) == "202"
    assert served.emulator.invoke(b'{"action": "echo"}').body == b'{"action": "echo"}'


def test_a_stream_for_an_unknown_invocation_is_refused(served: Served) -> None:
    host, port = served.emulator.runtime_api.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /2018-06-01/runtime/invocation/nope/response HTTP/1.1\r\nHost: x\r\n"
            b"Lambda-Runtime-Function-Response-Mode: streaming\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        status, _, body = head(read_all(sock, bytearray()))
    assert status == 400 and json.loads(body)["errorType"] == "InvalidRequestID"


def test_a_malformed_stream_ends_in_error_and_the_runtime_gets_400(
    served: Served, tmp_path: Path
) -> None:
    status_file = tmp_path / "status"
    spec = {"action": "stream", "chunks": ["ok"], "malformed": True}
    spec["status_file"] = str(status_file)
    with served.connect(http_request("POST", INVOKE_PATH, json.dumps(spec).encode())) as sock:
        status, _, body = head(read_all(sock, bytearray()))
    data, trailers, complete = dechunk(body)
    assert (status, data, complete) == (200, b"ok", True)
    assert trailers["lambda-runtime-function-error-type"] == "Runtime.ExitError"
    assert written(status_file) == "400"


def test_an_event_invocation_that_streams_is_drained(served: Served, tmp_path: Path) -> None:
    status_file = tmp_path / "status"
    spec = {"action": "stream", "chunks": ["x" * 100_000] * 30, "status_file": str(status_file)}
    result = served.emulator.invoke(json.dumps(spec).encode(), invocation_type="Event")
    assert (result.status, result.stream) == (202, None)
    assert written(status_file) == "202"  # nobody read it, and the runtime was answered
    assert served.emulator.invoke(b'{"action": "echo"}').body == b'{"action": "echo"}'
