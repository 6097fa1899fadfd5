"""sor.runtime.api's client against sor's real emulator and a raw socket server."""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sor.emulator.answers import InvokeResult
from sor.emulator.emulator import Emulator
from sor.logs import Log
from sor.runtime.api import RuntimeApiClient, RuntimeApiError


class _Quiet:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator whose bootstrap only sleeps: the test itself plays the runtime."""
    emu = Emulator(
        tmp_path,
        timeout=10,
        bootstrap=[sys.executable, "-c", "import time; time.sleep(60)"],
        log=Log(_Quiet()),  # type: ignore[arg-type]
    )
    emu.start()
    yield emu
    emu.stop()


def _invoke_in_background(emu: Emulator, payload: bytes) -> tuple[threading.Thread, list[Any]]:
    results: list[InvokeResult] = []
    thread = threading.Thread(target=lambda: results.append(emu.invoke(payload)), daemon=True)
    thread.start()
    return thread, results


def test_next_respond_and_fail_against_the_emulator(emulator: Emulator) -> None:
    client = RuntimeApiClient(emulator.runtime_api)
    try:
        big = json.dumps({"data": "x" * 1_000_000}).encode()
        thread, results = _invoke_in_background(emulator, big)
        inv = client.next()
        assert inv.event == big
        assert inv.invoked_function_arn.startswith("arn:aws:lambda:")
        assert inv.deadline_ms > 0 and inv.trace_id
        assert client.respond(inv.request_id, b'{"ok": true}') == 202
        thread.join(5)
        assert results[0].body == b'{"ok": true}'

        thread, results = _invoke_in_background(emulator, b"{}")
        inv = client.next()
        error = {"errorType": "Boom", "errorMessage": "it broke", "stackTrace": ["a"]}
        assert client.fail(inv.request_id, error) == 202
        thread.join(5)
        assert results[0].function_error == "Unhandled"
        assert json.loads(results[0].body) == {**error, "requestId": inv.request_id}
        assert client.respond(inv.request_id, b"{}") == 403  # answered twice: refused, no raise
    finally:
        client.close()


def test_malformed_answer_is_a_clear_error_without_retries() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-not-http\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    client = RuntimeApiClient(f"127.0.0.1:{sock.getsockname()[1]}", sleep=lambda _: None)
    try:
        with pytest.raises(RuntimeApiError, match="not HTTP"):
            client.next()
        assert len(accepted) == 1
    finally:
        client.close()
        sock.close()


def test_unreachable_api_gives_up_after_the_bounded_retries() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    slept: list[float] = []
    client = RuntimeApiClient(f"127.0.0.1:{port}", retry_delays=(0.01, 0.02), sleep=slept.append)
    with pytest.raises(RuntimeApiError, match=f"127.0.0.1:{port} is unreachable"):
        client.next()
    assert slept == [0.01, 0.02]


def test_bad_address_is_refused() -> None:
    for address in ("", "host/path", "host:port"):
        with pytest.raises(RuntimeApiError, match="host:port"):
            RuntimeApiClient(address)


def _swallowing_server(requests: list[bytes]) -> socket.socket:
    """Reads each whole request, then hangs up without answering."""
    sock = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        while len(body) < int(line.split(b":")[1]):
                            body += conn.recv(65536)
                requests.append(head.split(b"\r\n")[0])

    threading.Thread(target=serve, daemon=True).start()
    return sock


@pytest.mark.parametrize(
    "post",
    [
        lambda c: c.respond("r-1", b'"ok"'),
        lambda c: c.fail("r-1", {"errorType": "E", "errorMessage": "m"}),
        lambda c: c.init_error({"errorType": "E", "errorMessage": "m"}),
    ],
)
def test_a_post_that_was_sent_is_never_sent_twice(post: Any) -> None:
    requests: list[bytes] = []
    sock = _swallowing_server(requests)
    client = RuntimeApiClient(f"127.0.0.1:{sock.getsockname()[1]}", sleep=lambda _: None)
    try:
        with pytest.raises(RuntimeApiError, match=r"after the request was sent.*not retried"):
            post(client)
        assert len(requests) == 1
    finally:
        client.close()
        sock.close()


def test_a_get_next_the_server_dropped_is_retried() -> None:
    requests: list[bytes] = []
    sock = _swallowing_server(requests)
    client = RuntimeApiClient(
        f"127.0.0.1:{sock.getsockname()[1]}", retry_delays=(0.0, 0.0), sleep=lambda _: None
    )
    try:
        with pytest.raises(RuntimeApiError, match="unreachable"):
            client.next()
        assert len(requests) == 3
    finally:
        client.close()
        sock.close()


def _raw_server(
    answers: list[bytes], sock: Any, dropped: threading.Event | None = None
) -> list[bytes]:
    """Serve one answer per connection, then drop the connection without saying so."""
    import socket

    seen: list[bytes] = []

    def serve() -> None:
        for answer in answers:
            conn, _ = sock.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: (\d+)", head)
                while length and len(body) < int(length.group(1)):
                    body += conn.recv(65536)
                seen.append(head.split(b"\r\n")[0])
                conn.sendall(answer)
                conn.shutdown(socket.SHUT_RDWR)
                if dropped is not None:
                    dropped.set()

    threading.Thread(target=serve, daemon=True).start()
    return seen


def test_client_reconnects_after_a_dropped_keep_alive() -> None:
    import socket

    from sor.runtime.api import RuntimeApiClient

    sock = socket.create_server(("127.0.0.1", 0))
    next_answer = (
        b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\n"
        b"Lambda-Runtime-Deadline-Ms: 1\r\nContent-Length: 2\r\n\r\n{}"
    )
    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"
    dropped = threading.Event()
    seen = _raw_server([next_answer, accepted], sock, dropped)
    client = RuntimeApiClient(f"127.0.0.1:{sock.getsockname()[1]}")
    try:
        inv = client.next()
        assert inv.request_id == "r-1" and inv.event == b"{}"
        # Dropped while idle: a POST is only sent again when no byte of it left, so the test
        # waits for the drop instead of racing it (sor.http.client notices it before sending).
        assert dropped.wait(5)
        assert client.respond("r-1", b'"ok"') == 202
        assert seen == [
            b"GET /2018-06-01/runtime/invocation/next HTTP/1.1",
            b"POST /2018-06-01/runtime/invocation/r-1/response HTTP/1.1",
        ]
    finally:
        client.close()
        sock.close()


def test_client_retries_until_the_api_comes_up() -> None:
    import socket

    from sor.runtime.api import RuntimeApiClient

    # Bound but not listening: connections are refused, and no other test can take the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"
    seen: list[bytes] = []

    def start_late() -> None:
        time.sleep(0.3)
        sock.listen()
        seen.extend(_raw_server([accepted], sock))

    threading.Thread(target=start_late, daemon=True).start()
    client = RuntimeApiClient(f"127.0.0.1:{port}")
    try:
        assert client.init_error({"errorType": "X", "errorMessage": "y"}) == 202
    finally:
        client.close()
        sock.close()


@pytest.mark.parametrize(
    "error",
    [
        {"errorType": "Big", "errorMessage": "m" * 7000, "stackTrace": []},  # under 16 KiB
        {"errorType": "T" * 100_000, "errorMessage": "m" * 100_000, "stackTrace": ["x"] * 9999},
    ],
    ids=["a 7 kB message", "everything huge"],
)
def test_error_trailers_fit_the_header_lines_http_stacks_read(error: dict[str, Any]) -> None:
    # sor's emulator (sor.http.chunked) reads trailer lines of up to 8 KiB, as most stacks do
    from sor.http import chunked
    from sor.runtime.api import error_trailers

    trailers = error_trailers(error, "req-1", "python")
    for name, value in trailers.items():
        assert len(f"{name}: {value}\r\n") < chunked._MAX_LINE, name
    document = json.loads(base64.b64decode(trailers["Lambda-Runtime-Function-Error-Body"]))
    assert document["errorType"] == trailers["Lambda-Runtime-Function-Error-Type"]
    assert document["errorType"].startswith(error["errorType"][:256])
