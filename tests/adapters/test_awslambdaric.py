"""Acceptance: awslambdaric, AWS's own Python runtime client, hosted by `sor local serve`.

A real `sor local serve` process on 127.0.0.1 (`--port 0`: the port it logs), driven over HTTP;
the answers must be the AWS Runtime Interface Emulator's.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HANDLER = """
import os, signal, time

def fn(event, context):
    action = event.get("action") if isinstance(event, dict) else None
    if action == "fail":
        raise ValueError("boom")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "exit":
        os._exit(event["code"])
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "big":
        return "x" * event["size"]
    if action == "pid":
        return {"pid": os.getpid(), "pgid": os.getpgrp()}
    if action == "echo":
        return event
    if action == "context":
        return {"custom": context.client_context.custom, "env": context.client_context.env}
    if action == "tenant":
        return {"tenant_id": context.tenant_id}
    left = context.get_remaining_time_in_millis()
    return {"id": context.aws_request_id, "event": event, "left": left}
"""

PATH = "/2015-03-31/functions/function/invocations"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    logs: list[str] = field(default_factory=list)

    def invoke(
        self, event: object, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", PATH, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            conn.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "handler.py").write_text(HANDLER)
    bootstrap = f"{sys.executable} -m awslambdaric handler.fn"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOR_", "AWS_LAMBDA_"))}
    argv = [sys.executable, "-m", "sor", "local", "serve", str(tmp_path), "--port", "0"]
    proc = subprocess.Popen(
        [*argv, "--timeout", "2", "--bootstrap", bootstrap], stderr=subprocess.PIPE, env=env
    )
    logs: list[str] = []
    ready = threading.Event()
    port: list[int] = []

    def pump() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace")
            logs.append(line)
            if "listening on http://" in line and not port:
                port.append(int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]))
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    assert ready.wait(20), "".join(logs)
    server = Server(proc, port[0], logs)
    yield server
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, "".join(logs)


def test_success_and_handler_exception_bodies(serve: Server) -> None:
    status, body, headers = serve.invoke({"hello": "world"})
    assert status == 200
    answer = json.loads(body)
    assert answer["event"] == {"hello": "world"} and len(answer["id"]) == 36
    assert 0 < answer["left"] <= 2000
    assert "X-Amz-Function-Error" not in headers

    status, body, headers = serve.invoke({"action": "fail"})
    assert status == 200
    error = json.loads(body)
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]  # awslambdaric's
    assert (error["errorMessage"], error["errorType"]) == ("boom", "ValueError")
    assert any("raise ValueError" in frame for frame in error["stackTrace"])
    assert headers["X-Amz-Function-Error"] == "Unhandled"


def test_timeout_body_then_next_invoke_works(serve: Server) -> None:
    pid = json.loads(serve.invoke({"action": "pid"})[1])["pid"]
    began = time.monotonic()
    status, body, _ = serve.invoke({"action": "sleep", "seconds": 60})
    assert time.monotonic() - began < 30  # did not wait for the handler's 60 s
    assert (status, body) == (200, b"Task timed out after 2.00 seconds")
    assert not alive(pid)
    assert json.loads(serve.invoke({"action": "echo", "n": 1})[1]) == {"action": "echo", "n": 1}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"action": "exit", "code": 42}, "Runtime exited with error: exit status 42"),
        ({"action": "kill"}, "Runtime exited with error: signal: killed"),
    ],
)
def test_bootstrap_dying_mid_invocation(serve: Server, event: object, reason: str) -> None:
    status, body, headers = serve.invoke(event)
    assert status == 502
    error = json.loads(body)
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith(f"Error: {reason}")
    assert headers["X-Amz-Function-Error"] == "Unhandled"
    assert json.loads(serve.invoke({"action": "echo"})[1]) == {"action": "echo"}


def test_concurrent_invokes_are_queued(serve: Server) -> None:
    results: dict[int, tuple[int, bytes, dict[str, str]]] = {}

    def call(n: int) -> None:
        results[n] = serve.invoke({"action": "echo", "n": n, "pad": "y" * 1000 * n})

    threads = [threading.Thread(target=call, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == list(range(5))
    for n, (status, body, _) in results.items():
        assert status == 200
        assert json.loads(body) == {"action": "echo", "n": n, "pad": "y" * 1000 * n}


def test_six_megabyte_event_and_response(serve: Server) -> None:
    pad = "z" * (6 * 1024 * 1024 - 100)
    event = {"action": "echo", "pad": pad}
    status, body, _ = serve.invoke(event)
    assert status == 200
    assert len(body) > 6 * 1024 * 1024 - 100 and json.loads(body) == event
    status, body, _ = serve.invoke({"action": "big", "size": 6 * 1024 * 1024})
    assert (status, len(body)) == (200, 6 * 1024 * 1024 + 2)


def test_response_over_six_megabytes_is_refused(serve: Server) -> None:
    status, body, headers = serve.invoke({"action": "big", "size": 7 * 1024 * 1024})
    assert status == 200
    error = json.loads(body)
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert headers["X-Amz-Function-Error"] == "Unhandled"
    assert json.loads(serve.invoke({"action": "echo"})[1]) == {"action": "echo"}


def test_stopping_the_server_leaves_no_process(serve: Server) -> None:
    owner = json.loads(serve.invoke({"action": "pid"})[1])
    assert alive(owner["pid"])
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(15) == 0
    assert not alive(owner["pid"])
    with pytest.raises(ProcessLookupError):
        os.killpg(owner["pgid"], 0)


def test_client_context_reaches_the_handler(serve: Server) -> None:
    context = {"custom": {"user": "Zoë ☃ 東京"}, "env": {"locale": "fr_FR"}}
    encoded = base64.b64encode(json.dumps(context, ensure_ascii=False).encode()).decode()
    status, body, _ = serve.invoke({"action": "context"}, {"X-Amz-Client-Context": encoded})
    assert (status, json.loads(body)) == (200, context)
    status, body, _ = serve.invoke({"action": "context"}, {"X-Amz-Client-Context": "bad!"})
    assert status == 400
    assert json.loads(body)["errorType"] == "InvalidRequestContentException"


def test_sor_invoke_tenant_id_and_async_reach_awslambdaric(serve: Server) -> None:
    """AWS's client reads the tenant id where the emulator puts it; `sor invoke` drives it."""
    url = f"http://127.0.0.1:{serve.port}"
    command = [sys.executable, "-m", "sor", "invoke", url, "--event", "-"]
    done = subprocess.run(
        [*command, "--tenant-id", "acme"],
        input=b'{"action": "tenant"}',
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"tenant_id": "acme"}
    done = subprocess.run(
        [*command, "--async"], input=b'{"action": "fail"}', capture_output=True, timeout=30
    )
    assert (done.returncode, done.stdout) == (0, b"")
    deadline = time.monotonic() + 15
    while not any("asynchronous invocation failed: ValueError" in line for line in serve.logs):
        assert time.monotonic() < deadline, "".join(serve.logs)
        time.sleep(0.02)
