"""The HTTP client of the Runtime API: import cost and per-call cost of requests, http.client and
sor.http.client, against one raw keep-alive server in another process (so the server's own
work is the same for all three and does not share their GIL)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from bench.stats import Row

# A server that answers every request with a fixed Lambda-like response, as fast as it can.
_SERVER = r"""
import socket, sys, threading
sock = socket.create_server(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
NEXT = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Lambda-Runtime-Aws-Request-Id: 8f507cfc-0000-4000-8000-000000000000\r\n"
        b"Lambda-Runtime-Deadline-Ms: 1700000000000\r\n"
        b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:1:function:f\r\n"
        b"Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\r\n"
        b"Content-Length: 8\r\n\r\n{\"n\": 1}")
ACCEPTED = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
            b"Content-Length: 16\r\n\r\n{\"status\": \"OK\"}")
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
        while b"\r\n\r\n" in buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                break
            buf = rest[length:]
            conn.sendall(NEXT if head.startswith(b"GET") else ACCEPTED)
    conn.close()
while True:  # one thread per connection: each client keeps its own connection open
    threading.Thread(target=serve, args=(sock.accept()[0],), daemon=True).start()
"""

IMPORTS = {
    "requests": "import requests",
    "http.client": "import http.client",
    "sor.http.client": "import sor.http.client",
}
_PATH = "/2018-06-01/runtime/invocation"


def import_ms(statement: str, runs: int) -> float:
    """Median wall time of a fresh interpreter running ``statement``, less an empty one."""

    def once(code: str) -> float:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - began

    bare = statistics.median(once("pass") for _ in range(runs))
    return (statistics.median(once(statement) for _ in range(runs)) - bare) * 1000


def _clients(port: int) -> dict[str, Callable[[], None]]:
    import http.client

    import requests

    from sor.http.client import HttpConnection

    session = requests.Session()
    base = f"http://127.0.0.1:{port}{_PATH}"
    conn = http.client.HTTPConnection("127.0.0.1", port)
    ours = HttpConnection(f"127.0.0.1:{port}")
    body = b'{"ok": true, "n": 1}'

    def with_requests() -> None:
        session.get(f"{base}/next").content  # noqa: B018 - reading the body is the point
        session.post(f"{base}/r/response", data=body).content  # noqa: B018

    def with_http_client() -> None:
        conn.request("GET", f"{_PATH}/next")
        conn.getresponse().read()
        conn.request("POST", f"{_PATH}/r/response", body=body)
        conn.getresponse().read()

    def with_ours() -> None:
        ours.request("GET", f"{_PATH}/next", {})
        ours.request("POST", f"{_PATH}/r/response", {}, body)

    return {"requests": with_requests, "http.client": with_http_client, "sor": with_ours}


def per_call_us(runs: int) -> dict[str, float]:
    """Median µs of one GET next + POST response pair, per client."""
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        clients = _clients(port)
        samples: dict[str, list[float]] = {name: [] for name in clients}
        for call in clients.values():
            for _ in range(10):
                call()
        # Interleaved rounds: a noisy neighbour slows every client alike, not just one.
        for _ in range(10):
            for name, call in clients.items():
                for _ in range(max(1, runs // 10)):
                    began = time.perf_counter()
                    call()
                    samples[name].append(time.perf_counter() - began)
        return {name: statistics.median(s) * 1e6 for name, s in samples.items()}
    finally:
        server.kill()
        server.wait()


def rows(runs: int, import_runs: int) -> Sequence[Row]:
    """Import cost and per-call cost of the three clients; sor.http.client is the baseline."""
    imports = {name: import_ms(code, import_runs) for name, code in IMPORTS.items()}
    calls = per_call_us(runs)
    out = [
        Row(f"import, {name}", ms, "ms", "sor.http.client", imports["sor.http.client"])
        for name, ms in imports.items()
        if name != "sor.http.client"
    ]
    out.append(Row("import, sor.http.client", imports["sor.http.client"], "ms"))
    for name in ("requests", "http.client"):
        out.append(Row(f"next+post, {name}", calls[name], "us", "sor.http.client", calls["sor"]))
    out.append(Row("next+post, sor.http.client", calls["sor"], "us"))
    return out
