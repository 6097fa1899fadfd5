"""`sor invoke` against `sor local serve` (real processes) and a hand-written streaming server."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.local_serve import Serve
from support.runtime_api_server import read_request

from sor.commands.invoke import INVOKE_PATH, invoke_url

HANDLER = textwrap.dedent(
    """
    import json, os, pathlib

    def handler(event, context):
        if event.get("fail"):
            raise ValueError("asked to fail")
        if event.get("mark"):
            pathlib.Path(event["mark"]).write_text(json.dumps(event))
        cc = context.client_context
        return {
            "event": event,
            "tenant_id": context.tenant_id,
            "custom": cc.custom if cc is not None else None,
        }
    """
)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    directory = tmp_path_factory.mktemp("fn")
    (directory / "app.py").write_text(HANDLER)
    (directory / "sor.yml").write_text("version: 1\nruntime: {handler: app.handler}\n")
    server = Serve(directory)
    yield server
    server.stop()


def sor_invoke(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sor", "invoke", *args],
        input=stdin,
        capture_output=True,
        timeout=30,
    )


def test_success_prints_the_payload_and_exits_0(serve: Serve, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"hello": "world"}')
    done = sor_invoke(serve.url, "--event", str(event))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["event"] == {"hello": "world"}
    # the RIE path given in full, the event on stdin
    done = sor_invoke(serve.url + INVOKE_PATH, "--event", "-", stdin=b'{"n": 2}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"event": {"n": 2}, "tenant_id": None, "custom": None}


def test_a_function_error_exits_1_with_the_error_printed(serve: Serve) -> None:
    done = sor_invoke(serve.url, "--event", "-", stdin=b'{"fail": true}')
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "asked to fail")
    assert b"Unhandled" in done.stderr


def test_tenant_id_and_client_context_reach_the_handler(serve: Serve) -> None:
    context = json.dumps({"custom": {"k": "v", "é": 1}, "env": {}, "client": {}})
    done = sor_invoke(serve.url, "--tenant-id", "tenant-7", "--client-context", context)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["tenant_id"] == "tenant-7"
    assert answer["custom"] == {"k": "v", "é": 1}


def test_async_is_accepted_at_once_and_runs_in_the_background(serve: Serve, tmp_path: Path) -> None:
    mark = tmp_path / "ran.json"
    event = json.dumps({"mark": str(mark), "async": True}).encode()
    done = sor_invoke(serve.url, "--async", "--event", "-", stdin=event)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    deadline = time.monotonic() + 15
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads(mark.read_text())["async"] is True


def test_a_failing_async_invocation_is_logged(serve: Serve) -> None:
    done = sor_invoke(serve.url, "--async", "--event", "-", stdin=b'{"fail": true}')
    assert done.returncode == 0, done.stderr  # accepted: the failure comes later
    deadline = time.monotonic() + 15
    while "asynchronous invocation failed" not in serve.log_text():
        assert time.monotonic() < deadline, serve.log_text()
        time.sleep(0.02)
    assert "asynchronous invocation failed: ValueError" in serve.log_text()


def test_dry_run_answers_204_without_invoking(serve: Serve, tmp_path: Path) -> None:
    mark = tmp_path / "dry.json"
    port = int(serve.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for kind, status in (("DryRun", 204), ("Sometimes", 400)):
        body = json.dumps({"mark": str(mark)})
        conn.request("POST", INVOKE_PATH, body, {"X-Amz-Invocation-Type": kind})
        response = conn.getresponse()
        data = response.read()
        assert response.status == status
        if status == 400:
            assert json.loads(data)["errorType"] == "ValidationException"
    conn.close()
    # a synchronous invocation after them has run: had the dry run been queued, it ran before
    assert sor_invoke(serve.url).returncode == 0
    assert not mark.exists()


def test_unreachable_exits_2() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
        done = sor_invoke(f"http://127.0.0.1:{sock.getsockname()[1]}")
    assert done.returncode == 2
    assert b"Sor.Unreachable: cannot reach" in done.stderr and b"Connection refused" in done.stderr


def test_an_answer_that_breaks_off_exits_2_after_what_arrived() -> None:
    sock, _ = _streaming_server(b"200 OK", b"", [b'{"part": 1', b"never sent"], None)
    try:
        done = sor_invoke(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        sock.close()
    assert done.returncode == 2
    assert done.stdout == b'{"part": 1'
    assert b"broke off" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client-context", "[1]"], b"must be a JSON object"),
        (["--client-context", "{nope"], b"is not JSON"),
        (["ftp://example.com/"], b"is not an http"),
        (["--event", "/no/such/file.json"], b"--event /no/such/file.json"),
        (["--tenant-id", ""], b"must not be empty"),
        (["--bogus"], b"unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: bytes) -> None:
    done = sor_invoke("http://127.0.0.1:9", *args) if args[0].startswith("-") else sor_invoke(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_the_rie_path_is_added_only_when_the_url_has_none() -> None:
    assert invoke_url("http://127.0.0.1:9000") == f"http://127.0.0.1:9000{INVOKE_PATH}"
    assert invoke_url("http://h:1/") == f"http://h:1{INVOKE_PATH}"
    assert invoke_url("localhost:8080") == f"http://localhost:8080{INVOKE_PATH}"
    assert invoke_url("https://h/custom/path?x=1") == "https://h/custom/path?x=1"


def _streaming_server(
    status: bytes, headers: bytes, chunks: list[bytes], gate: threading.Event | None
) -> tuple[socket.socket, list[bytes]]:
    """One raw HTTP answer, chunked: the first chunk at once, the rest once ``gate`` is set
    (no gate: it hangs up after the first chunk)."""
    sock = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            head, body = read_request(conn)
            seen.extend([head, body])
            conn.sendall(
                b"HTTP/1.1 " + status + b"\r\nTransfer-Encoding: chunked\r\n" + headers + b"\r\n"
            )
            for i, chunk in enumerate(chunks):
                if i == 1 and (gate is None or not gate.wait(20)):
                    return  # the first chunk never showed: leave the client hanging, and fail
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.sendall(b"0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return sock, seen


def test_a_streamed_answer_is_printed_as_it_arrives() -> None:
    gate = threading.Event()
    chunks = [b'{"part": 1}\n', b'{"part": 2}\n', b'{"part": 3}\n']
    sock, seen = _streaming_server(b"200 OK", b"", chunks, gate)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sor", "invoke", f"http://127.0.0.1:{port}", "--tenant-id", "t1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until sor invoke printed (and flushed) it
        assert first == chunks[0]
        gate.set()  # only now are the other chunks sent
        rest = proc.stdout.read()
        assert proc.wait(20) == 0
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert rest == chunks[1] + chunks[2]
    head = seen[0].decode()
    assert head.startswith(f"POST {INVOKE_PATH} HTTP/1.1")
    assert "X-Amz-Tenant-Id: t1" in head and "X-Amz-Invocation-Type: RequestResponse" in head
    assert seen[1] == b"{}"


@pytest.mark.parametrize(
    ("status", "headers"),
    [(b"502 Bad Gateway", b""), (b"200 OK", b"X-Amz-Function-Error: Unhandled\r\n")],
)
def test_rie_error_answers_exit_1(status: bytes, headers: bytes) -> None:
    gate = threading.Event()
    gate.set()
    body = b'{"errorType":"Runtime.ExitError","errorMessage":"gone"}'
    sock, _ = _streaming_server(status, headers, [body], gate)
    try:
        done = sor_invoke(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        sock.close()
    assert done.returncode == 1
    assert done.stdout == body
