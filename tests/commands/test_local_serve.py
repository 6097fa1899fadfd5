"""`sor local serve` as a user runs it: function URLs on the sor runtime with a Python handler,
`--max-concurrency`, and `sor invoke` printing a streamed answer (tests/support/raw_bootstrap.py
streams; `sor run`'s own streaming is tested with the runtime)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from support.local_serve import Serve

BOOTSTRAP = f"{sys.executable} {Path(__file__).parents[1] / 'support' / 'raw_bootstrap.py'}"

HANDLER = textwrap.dedent(
    """
    import json

    def handler(event, context):
        if event["rawPath"] == "/plain":
            return {"path": event["rawPath"], "query": event.get("queryStringParameters")}
        if event["rawPath"] == "/fail":
            raise RuntimeError("no")
        name = (event.get("queryStringParameters") or {}).get("name", "nobody")
        method = event["requestContext"]["http"]["method"]
        return {
            "statusCode": 200,
            "headers": {"content-type": "text/plain", "x-method": method},
            "cookies": ["seen=1"],
            "body": f"hello {name}: {event.get('body', '')}",
        }
    """
)


@pytest.fixture(scope="module")
def python_fn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    directory = tmp_path_factory.mktemp("fn")
    (directory / "app.py").write_text(HANDLER)
    (directory / "sor.yml").write_text("version: 1\nruntime: {handler: app.handler}\n")
    server = Serve(directory)
    yield server
    server.stop()


def _call(url: str, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "text/plain"})
    return conn.getresponse()


def test_a_function_url_on_the_sor_runtime(python_fn: Serve) -> None:
    response = _call(python_fn.url, "POST", "/greet?name=ada", b"the body")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/plain"
    assert response.getheader("X-Method") == "POST"
    assert response.getheader("Set-Cookie") == "seen=1"
    assert response.read() == b"hello ada: the body"


def test_a_plain_answer_is_json_on_a_function_url(python_fn: Serve) -> None:
    response = _call(python_fn.url, "GET", "/plain?a=1&a=2")
    assert (response.status, response.getheader("Content-Type")) == (200, "application/json")
    assert json.loads(response.read()) == {"path": "/plain", "query": {"a": "1,2"}}


def test_a_handler_error_on_a_function_url_is_a_502(python_fn: Serve) -> None:
    response = _call(python_fn.url, "GET", "/fail")
    assert response.status == 502 and b"Internal Server Error" in response.read()
    assert _call(python_fn.url, "GET", "/plain").status == 200  # and it goes on serving
    assert "RuntimeError" in python_fn.log_text()


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    directory = tmp_path_factory.mktemp("raw")
    server = Serve(directory, "--bootstrap", BOOTSTRAP, "--max-concurrency", "2", "--timeout", "30")
    yield server
    server.stop()


def test_max_concurrency_reaches_the_runtime(streaming: Serve) -> None:
    spec = {"action": "hold", "until": 1, "seconds": 0}
    response = _call(streaming.url, "GET", "/h?spec=" + quote(json.dumps(spec)))
    assert response.status == 200
    assert json.loads(response.read())["env"] == {"AWS_LAMBDA_MAX_CONCURRENCY": "2"}


def test_sor_invoke_prints_a_stream_as_it_arrives(streaming: Serve, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    spec = {"action": "stream", "chunks": ["one\n", "two\n", "three\n"], "gate": str(gate)}
    spec["error"] = "Probe.Late"
    (tmp_path / "event.json").write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sor",
            "invoke",
            streaming.url,
            "--event",
            str(tmp_path / "event.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"one\n"  # printed before the last chunk was sent
        assert proc.stdout.readline() == b"two\n"
        with open(gate, "wb") as f:
            f.write(b"x")
        rest = proc.stdout.read()
        code = proc.wait(30)
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rest == b"three\n"
    assert code == 1  # an error after the first byte
    assert b"Probe.Late" in stderr and b"mid-stream" in stderr


def test_sor_invoke_of_a_stream_that_ends_well_exits_0(streaming: Serve, tmp_path: Path) -> None:
    spec = {"action": "stream", "chunks": ["a", "b"], "content_type": "text/plain"}
    (tmp_path / "event.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sor",
            "invoke",
            streaming.url,
            "--event",
            str(tmp_path / "event.json"),
        ],
        capture_output=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"ab", b"")


@pytest.mark.parametrize("value", ["0", "-1", "x", "1025", "2.5"])
def test_a_bad_max_concurrency_is_a_usage_error(tmp_path: Path, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sor", "local", "serve", str(tmp_path), "--max-concurrency", value],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert b"--max-concurrency" in done.stderr and b"from 1 to 1024" in done.stderr


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_100_mib_stream_passes_through_in_bounded_memory(streaming: Serve) -> None:
    size = 100 << 20
    spec = {"action": "big", "size": size}
    response = _call(streaming.url, "GET", "/big?spec=" + quote(json.dumps(spec)))
    assert response.status == 200
    got = 0
    while piece := response.read1(1 << 16):
        got += len(piece)
    assert got == size
    # sor local serve itself (not its bootstrap) never held the stream: far below its size
    peak = _peak_rss_kib(streaming.proc.pid)
    print(f"sor local serve peak RSS after a 100 MiB stream: {peak} KiB")
    assert peak < 80 * 1024
