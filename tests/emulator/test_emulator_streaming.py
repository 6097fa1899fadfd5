"""Streamed answers, function URLs and --max-concurrency through the embedded emulator.

The bootstrap is a real process, tests/support/raw_bootstrap.py: a Runtime API client over raw
sockets that streams (chunks, prelude, trailers) and runs invocations concurrently. "Streams" is
shown by a handshake, not a timing: the bootstrap sends its last chunk only once the test has
read the first bytes and written to a FIFO.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from sor.commands.local_invoke import print_stream
from sor.emulator.emulator import Emulator
from sor.emulator.invoke_endpoint import invoke_server
from sor.logs import Log

BOOTSTRAP = [sys.executable, str(Path(__file__).parents[1] / "support" / "raw_bootstrap.py")]
INVOKE_PATH = "/2015-03-31/functions/function/invocations"


class Served:
    """An emulator hosting the raw bootstrap, behind the invoke endpoint and function URLs."""

    def __init__(
        self, directory: Path, concurrency: int = 1, timeout: float = 30.0, workers: int = 0
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOR_", "AWS_LAMBDA_"))}
        env["PROBE_WORKERS"] = str(workers or "")
        self.emulator = Emulator(
            directory, timeout, env, BOOTSTRAP, Log(sys.stderr), max_concurrency=concurrency
        )
        self.server = invoke_server(self.emulator, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        self.emulator.start()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.emulator.stop()

    def connect(self, request: bytes) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.sendall(request)
        return sock


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.close()


def _request(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: fn.local\r\nConnection: close\r\n{headers}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _read_until(sock: socket.socket, buffer: bytearray, mark: bytes) -> None:
    while mark not in buffer:
        data = sock.recv(65536)
        assert data, f"the connection closed before {mark!r}: {bytes(buffer)!r}"
        buffer += data


def _read_all(sock: socket.socket, buffer: bytearray) -> bytes:
    while data := sock.recv(65536):
        buffer += data
    return bytes(buffer)


def _head(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = [(n.strip().lower(), v.strip()) for n, _, v in (x.partition(":") for x in lines[1:])]
    return int(lines[0].split()[1]), headers, rest


def _dechunk(body: bytes) -> tuple[bytes, dict[str, str], bool]:
    """A chunked body decoded by hand (not by sor's own decoder): data, trailers, complete."""
    data = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            trailers = {}
            for line in body.split(b"\r\n"):
                if line:
                    name, _, value = line.decode().partition(":")
                    trailers[name.strip().lower()] = value.strip()
            return data, trailers, body.endswith(b"\r\n\r\n") or body == b"\r\n"
        data, body = data + body[:size], body[size + 2 :]
    return data, {}, False


def _written(path: Path) -> str:
    """What the bootstrap wrote to ``path`` (it writes once the emulator has answered it)."""
    for _ in range(300):
        if path.exists() and (text := path.read_text()):
            return text
        threading.Event().wait(0.1)
    raise AssertionError(f"{path} was never written")


def _gate(tmp_path: Path, name: str = "gate") -> Path:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    return fifo


def _open_gate(fifo: Path) -> None:
    with open(fifo, "wb") as f:
        f.write(b"x")


def test_the_invoke_endpoint_passes_a_stream_on_as_it_arrives(
    served: Served, tmp_path: Path
) -> None:
    gate, status_file = _gate(tmp_path), tmp_path / "status"
    spec = {"action": "stream", "chunks": ["first|", "second|", "last"], "gate": str(gate)}
    spec |= {"content_type": "text/event-stream", "status_file": str(status_file)}
    sock = served.connect(_request("POST", INVOKE_PATH, json.dumps(spec).encode()))
    with sock:
        buffer = bytearray()
        _read_until(sock, buffer, b"second|")  # before the bootstrap may send its last chunk
        _open_gate(gate)
        raw = _read_all(sock, buffer)
    status, headers, body = _head(raw)
    assert status == 200
    assert ("content-type", "text/event-stream") in headers
    assert ("transfer-encoding", "chunked") in headers
    assert ("content-length" not in dict(headers)) and ("x-amz-function-error" not in dict(headers))
    data, trailers, complete = _dechunk(body)
    assert (data, trailers, complete) == (b"first|second|last", {}, True)
    assert _written(status_file) == "202"  # the runtime was answered as Lambda answers it


def test_an_error_after_the_first_byte_reaches_the_caller_in_trailers(
    served: Served, tmp_path: Path
) -> None:
    status_file = tmp_path / "status"
    spec = {"action": "stream", "chunks": ["partial"], "error": "Probe.Broken"}
    spec["status_file"] = str(status_file)
    with served.connect(_request("POST", INVOKE_PATH, json.dumps(spec).encode())) as sock:
        raw = _read_all(sock, bytearray())
    status, headers, body = _head(raw)
    assert status == 200
    declared = {n.strip().lower() for n in dict(headers)["trailer"].split(",")}
    assert declared == {
        "x-amz-function-error",
        "lambda-runtime-function-error-type",
        "lambda-runtime-function-error-body",
    }
    data, trailers, complete = _dechunk(body)
    assert data == b"partial" and complete
    assert trailers["x-amz-function-error"] == "Unhandled"
    assert trailers["lambda-runtime-function-error-type"] == "Probe.Broken"
    error = json.loads(base64.b64decode(trailers["lambda-runtime-function-error-body"]))
    assert error["errorType"] == "Probe.Broken" and error["errorMessage"] == "mid-stream"
    assert _written(status_file) == "202"
    # and the bootstrap goes on serving
    with served.connect(_request("POST", INVOKE_PATH, b'{"action": "echo", "n": 2}')) as sock:
        status, _, body = _head(_read_all(sock, bytearray()))
    assert (status, json.loads(body)) == (200, {"action": "echo", "n": 2})


def test_a_function_url_get_streams_an_http_stream(served: Served, tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    prelude = {
        "statusCode": 201,
        "headers": {"content-type": "text/html", "x-custom": "yes"},
        "cookies": ["a=1; Path=/", "b=2"],
    }
    spec = {"action": "stream", "prelude": prelude, "chunks": ["<p>one</p>", "<p>two</p>"]}
    spec["gate"] = str(gate)
    with served.connect(_request("GET", "/page?spec=" + quote(json.dumps(spec)))) as sock:
        buffer = bytearray()
        _read_until(sock, buffer, b"<p>one</p>")
        _open_gate(gate)
        raw = _read_all(sock, buffer)
    status, headers, body = _head(raw)
    assert status == 201
    assert ("content-type", "text/html") in headers and ("x-custom", "yes") in headers
    assert [v for n, v in headers if n == "set-cookie"] == ["a=1; Path=/", "b=2"]
    data, _, complete = _dechunk(body)
    assert (data, complete) == (b"<p>one</p><p>two</p>", True)  # the prelude is not in the body


def test_a_plain_stream_on_a_function_url_keeps_its_content_type(served: Served) -> None:
    spec = {"action": "stream", "chunks": ["data: 1\n\n", "data: 2\n\n"]}
    spec["content_type"] = "text/event-stream"
    with served.connect(_request("GET", "/events?spec=" + quote(json.dumps(spec)))) as sock:
        status, headers, body = _head(_read_all(sock, bytearray()))
    assert status == 200 and ("content-type", "text/event-stream") in headers
    assert _dechunk(body)[0] == b"data: 1\n\ndata: 2\n\n"


def test_an_error_mid_stream_cuts_a_function_url_response_short(served: Served) -> None:
    spec = {"action": "stream", "prelude": {"statusCode": 200}, "chunks": ["half"]}
    spec["error"] = "Probe.Broken"
    with served.connect(_request("GET", "/x?spec=" + quote(json.dumps(spec)))) as sock:
        status, _, body = _head(_read_all(sock, bytearray()))
    assert status == 200
    data, _, complete = _dechunk(body)
    assert data == b"half" and not complete  # no last chunk: the client sees it was cut short


def test_the_function_url_event(served: Served) -> None:
    headers = (
        "X-Multi: one\r\nX-Multi: two\r\nCookie: c1=v1; c2=v2\r\nUser-Agent: probe/1\r\n"
        "Content-Type: application/octet-stream\r\n"
    )
    binary = b"\x00\xff\x01binary"
    request = _request("PUT", "/some/path?a=1&a=2&b=x%20y&empty=", binary, headers)
    with served.connect(request) as sock:
        status, got, body = _head(_read_all(sock, bytearray()))
    assert status == 200 and ("content-type", "application/json") in got
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"]["x-multi"] == "one,two"
    assert event["headers"]["host"] == "fn.local" and "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == binary
    context = event["requestContext"]
    assert context["http"] == {
        "method": "PUT",
        "path": "/some/path",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe/1",
    }
    assert context["domainName"] == "fn.local" and context["stage"] == "$default"
    assert isinstance(context["timeEpoch"], int) and context["requestId"]
    text = json.dumps({"action": "echo", "text": "é"}).encode()
    request = _request("POST", "/", text, "Content-Type: application/json\r\n")
    with served.connect(request) as sock:
        event = json.loads(_head(_read_all(sock, bytearray()))[2])
    assert event["isBase64Encoded"] is False and json.loads(event["body"])["text"] == "é"
    assert "queryStringParameters" not in event and "cookies" not in event


@pytest.mark.parametrize(
    ("answer", "status", "headers", "body"),
    [
        (
            {"statusCode": 201, "headers": {"x-a": "1"}, "cookies": ["s=1", "t=2"], "body": "hi"},
            201,
            [("content-type", "application/json"), ("x-a", "1"), ("set-cookie", "s=1")],
            b"hi",
        ),
        (
            {
                "statusCode": 200,
                "headers": {"Content-Type": "image/png"},
                "body": base64.b64encode(b"\x89PNG\x00").decode(),
                "isBase64Encoded": True,
            },
            200,
            [("content-type", "image/png")],
            b"\x89PNG\x00",
        ),
        ({"message": "no status"}, 200, [("content-type", "application/json")], None),
        ("just text", 200, [("content-type", "application/json")], b"just text"),
        ([1, 2], 200, [("content-type", "application/json")], b"[1, 2]"),
        ({"statusCode": 204}, 204, [], b""),
        ({"statusCode": 304, "body": "dropped"}, 304, [], b""),
        ({"statusCode": 200, "headers": {"x-bad": "é"}}, 502, [], None),
        ({"statusCode": "200"}, 502, [], None),
        ({"statusCode": 200, "body": {"not": "a string"}}, 502, [], None),
    ],
)
def test_the_function_url_response_rules(
    served: Served, answer: object, status: int, headers: list[tuple[str, str]], body: bytes | None
) -> None:
    raw = json.dumps(answer)
    spec = json.dumps({"action": "return", "raw": raw}).encode()
    with served.connect(_request("POST", "/r", spec, "Content-Type: application/json\r\n")) as s:
        got_status, got_headers, got_body = _head(_read_all(s, bytearray()))
    assert got_status == status
    for header in headers:
        assert header in got_headers
    if isinstance(answer, dict) and "cookies" in answer:
        assert [v for n, v in got_headers if n == "set-cookie"] == answer["cookies"]
    if status in (204, 304):
        assert got_body == b""
        return
    assert got_body == (body if body is not None else raw.encode()) or status == 502


def test_a_function_error_on_a_function_url_is_a_502(served: Served) -> None:
    spec = json.dumps({"action": "fail"}).encode()
    with served.connect(_request("POST", "/x", spec, "Content-Type: application/json\r\n")) as s:
        status, _, body = _head(_read_all(s, bytearray()))
    assert status == 502 and b"Internal Server Error" in body


def _hold_all(served: Served, callers: int, until: int, path: str) -> list[dict[str, object]]:
    spec = {"action": "hold", "until": until, "seconds": 0.2}
    results: list[dict[str, object]] = []

    def call() -> None:
        if path == INVOKE_PATH:
            request = _request("POST", path, json.dumps(spec).encode())
        else:
            request = _request("GET", f"{path}?spec={quote(json.dumps(spec))}")
        with served.connect(request) as sock:
            status, _, body = _head(_read_all(sock, bytearray()))
        results.append({"status": status, **json.loads(body)})

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.parametrize("path", [INVOKE_PATH, "/fn"])
def test_max_concurrency_runs_n_at_once_and_queues_the_rest(tmp_path: Path, path: str) -> None:
    served = Served(tmp_path, concurrency=3, workers=5)  # it polls 5 times at once: 3 get one
    try:
        results = _hold_all(served, 7, 3, path)
    finally:
        served.close()
    assert len(results) == 7 and all(r["status"] == 200 for r in results)
    # 3 were in flight together (each waited for the others), never a 4th: the rest queued
    assert max(int(str(r["peak"])) for r in results) == 3
    assert all(r["env"] == {"AWS_LAMBDA_MAX_CONCURRENCY": "3"} for r in results)


def test_without_max_concurrency_one_runs_at_a_time(tmp_path: Path) -> None:
    served = Served(tmp_path, workers=3)
    try:
        results = _hold_all(served, 3, 1, INVOKE_PATH)
    finally:
        served.close()
    assert [r["peak"] for r in results] == [1, 1, 1]
    assert all(r["env"] == {} for r in results)


def test_a_timed_out_invocation_under_concurrency_is_refused_later(tmp_path: Path) -> None:
    served = Served(tmp_path, concurrency=2, timeout=1.0)
    status_file = tmp_path / "status"
    try:
        pid = served.emulator.bootstrap_pid()
        spec = {"action": "late", "seconds": 2.5, "status_file": str(status_file)}
        result = served.emulator.invoke(json.dumps(spec).encode())
        assert result.status == 200 and result.function_error == "Unhandled"
        assert result.body == b"Task timed out after 1.00 seconds"
        echo = served.emulator.invoke(b'{"action": "echo"}')  # the other slot still serves
        assert echo.body == b'{"action": "echo"}'
        assert _written(status_file) == "403"  # the late answer is refused
        assert served.emulator.bootstrap_pid() == pid  # Managed Instances let it run on
    finally:
        served.close()


def test_local_invoke_prints_a_stream_as_it_arrives(served: Served, tmp_path: Path) -> None:
    gate = _gate(tmp_path)
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
            _open_gate(gate)
            printer.join(30)
            out.close()
            seen += pipe.read()
    assert seen == b"one\ntwo\nthree\n"
    assert codes == [1]  # the stream ended in error: exit status 1 (the ERROR on stderr)


def test_a_timeout_mid_stream_ends_it_with_a_timeout_and_resets_the_runtime(
    tmp_path: Path,
) -> None:
    served = Served(tmp_path, timeout=1.0)
    gate = _gate(tmp_path)  # never opened: the last chunk never comes
    try:
        pid = served.emulator.bootstrap_pid()
        spec = {"action": "stream", "chunks": ["begun", "never"], "gate": str(gate)}
        with served.connect(_request("POST", INVOKE_PATH, json.dumps(spec).encode())) as sock:
            status, _, body = _head(_read_all(sock, bytearray()))
        data, trailers, complete = _dechunk(body)
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
    gate, status_file = _gate(tmp_path), tmp_path / "status"
    spec = {"action": "stream", "chunks": ["a" * 1000] * 40, "gate": str(gate)}
    spec["status_file"] = str(status_file)
    sock = served.connect(_request("POST", INVOKE_PATH, json.dumps(spec).encode()))
    _read_until(sock, bytearray(), b"aaaa")
    sock.close()  # gone before the end
    _open_gate(gate)
    assert _written(status_file) == "202"
    assert served.emulator.invoke(b'{"action": "echo"}').body == b'{"action": "echo"}'


def test_a_stream_for_an_unknown_invocation_is_refused(served: Served) -> None:
    host, port = served.emulator.runtime_api.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /2018-06-01/runtime/invocation/nope/response HTTP/1.1\r\nHost: x\r\n"
            b"Lambda-Runtime-Function-Response-Mode: streaming\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        status, _, body = _head(_read_all(sock, bytearray()))
    assert status == 400 and json.loads(body)["errorType"] == "InvalidRequestID"


def test_a_malformed_stream_ends_in_error_and_the_runtime_gets_400(
    served: Served, tmp_path: Path
) -> None:
    status_file = tmp_path / "status"
    spec = {"action": "stream", "chunks": ["ok"], "malformed": True}
    spec["status_file"] = str(status_file)
    with served.connect(_request("POST", INVOKE_PATH, json.dumps(spec).encode())) as sock:
        status, _, body = _head(_read_all(sock, bytearray()))
    data, trailers, complete = _dechunk(body)
    assert (status, data, complete) == (200, b"ok", True)
    assert trailers["lambda-runtime-function-error-type"] == "Runtime.ExitError"
    assert _written(status_file) == "400"


def test_an_event_invocation_that_streams_is_drained(served: Served, tmp_path: Path) -> None:
    status_file = tmp_path / "status"
    spec = {"action": "stream", "chunks": ["x" * 100_000] * 30, "status_file": str(status_file)}
    result = served.emulator.invoke(json.dumps(spec).encode(), invocation_type="Event")
    assert (result.status, result.stream) == (202, None)
    assert _written(status_file) == "202"  # nobody read it, and the runtime was answered
    assert served.emulator.invoke(b'{"action": "echo"}').body == b'{"action": "echo"}'
