"""The X-Ray error cause, sor's side: from any adapter's error answer to the posted header."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from support.runtime_api_server import Answer, RuntimeApiServer, read_request

from sor.runtime.api import XRAY_CAUSE_HEADER, RuntimeApiClient

# An exec adapter that answers every invoke with an error carrying the event's "xray" member.
ADAPTER = textwrap.dedent(
    """
    import json, os
    out = os.fdopen(4, "w")
    out.write('{"type":"ready"}\\n'); out.flush()
    for line in os.fdopen(3):
        msg = json.loads(line)
        answer = {"type": "error", "id": msg["id"],
                  "error": {"errorType": "Boom", "errorMessage": "b", "stackTrace": []}}
        if "xray" in msg["event"]:
            answer["xray"] = msg["event"]["xray"]
        out.write(json.dumps(answer) + "\\n"); out.flush()
    """
)
CONFIG = """
version: 1
runtime:
  language: exec
  command: ["{python}", "adapter.py"]
"""


@pytest.fixture
def sor(tmp_path: Path) -> Any:
    (tmp_path / "adapter.py").write_text(ADAPTER)
    (tmp_path / "sor.yml").write_text(CONFIG.format(python=sys.executable))
    server = RuntimeApiServer()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOR_", "_LAM"))}
    env.update(
        AWS_LAMBDA_RUNTIME_API=server.address,
        LAMBDA_TASK_ROOT=str(tmp_path),
        SOR_LAYER_DIR=str(tmp_path / "no-layer"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sor", "run"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL
    )
    yield server
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()


def cause_of(answer: Answer) -> str | None:
    return answer.headers.get(XRAY_CAUSE_HEADER)


CAUSE = {
    "working_directory": "/var/task",
    "exceptions": [
        {
            "type": "TypeError",
            "message": "bad input ☃",
            "stack": [{"path": "/var/task/index.js", "line": 3, "label": "h"}],
        }
    ],
    "paths": ["/var/task/index.js"],
}


def test_the_cause_an_adapter_sends_is_the_header(sor: RuntimeApiServer) -> None:
    answer = sor.invoke({"xray": CAUSE})
    assert answer.kind == "error" and answer.json()["errorType"] == "Boom"
    header = cause_of(answer)
    assert header == json.dumps(CAUSE)  # as awslambdaric encodes it: ASCII, ", " and ": "
    assert json.loads(header) == CAUSE


@pytest.mark.parametrize("xray", ["a string", [CAUSE], None])
def test_no_header_without_a_cause_object(sor: RuntimeApiServer, xray: Any) -> None:
    answer = sor.invoke({"xray": xray})
    assert answer.kind == "error" and cause_of(answer) is None
    assert cause_of(sor.invoke({})) is None


def _heads_of(posts: int) -> tuple[socket.socket, list[bytes]]:
    """A raw server (http.server refuses header lines over 64 KiB, Lambda's takes 1 MiB) that
    records the head of each request and answers 202."""
    sock = socket.create_server(("127.0.0.1", 0))
    heads: list[bytes] = []

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            for _ in range(posts):
                head, _ = read_request(conn)
                heads.append(head)
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")

    threading.Thread(target=serve, daemon=True).start()
    return sock, heads


def test_the_header_keeps_under_one_mebibyte() -> None:
    def sized(n: int) -> dict[str, Any]:
        cause: dict[str, Any] = {"working_directory": "", "exceptions": [], "paths": []}
        cause["working_directory"] = "w" * (n - len(json.dumps(cause)))
        assert len(json.dumps(cause)) == n
        return cause

    limit = 1024 * 1024
    sock, heads = _heads_of(3)
    client = RuntimeApiClient(f"127.0.0.1:{sock.getsockname()[1]}")
    error = {"errorType": "E", "errorMessage": "m", "stackTrace": []}
    try:
        for cause in (sized(limit - 1), sized(limit), {"message": "a\r\nInjected: yes é"}):
            assert client.fail("r-1", error, xray=cause) == 202
    finally:
        client.close()
        sock.close()
    prefix = XRAY_CAUSE_HEADER.encode() + b": "
    values = [
        [line[len(prefix) :] for line in head.split(b"\r\n") if line.startswith(prefix)]
        for head in heads
    ]
    assert values[0] == [json.dumps(sized(limit - 1)).encode()]
    assert values[1] == []  # awslambdaric keeps only a cause under 1 MiB
    # Escaped: the value never breaks the head, nor holds anything but ASCII.
    assert values[2] == [json.dumps({"message": "a\r\nInjected: yes é"}).encode()]
    assert b"\r\nInjected" not in heads[2] and values[2][0].isascii()
