"""The embedded emulator hosting tests/support/raw_bootstrap.py behind its HTTP front, and raw
HTTP helpers that read the wire as it is (chunks and trailers decoded by hand, not by sor)."""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

from sor.emulator.emulator import Emulator
from sor.emulator.invoke_endpoint import invoke_server
from sor.logs import Log

BOOTSTRAP = [sys.executable, str(Path(__file__).parent / "raw_bootstrap.py")]
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


def http_request(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    start = f"{method} {path} HTTP/1.1\r\nHost: fn.local\r\nConnection: close\r\n{headers}"
    return f"{start}Content-Length: {len(body)}\r\n\r\n".encode() + body


def read_until(sock: socket.socket, buffer: bytearray, mark: bytes) -> None:
    while mark not in buffer:
        data = sock.recv(65536)
        assert data, f"the connection closed before {mark!r}: {bytes(buffer)!r}"
        buffer += data


def read_all(sock: socket.socket, buffer: bytearray) -> bytes:
    while data := sock.recv(65536):
        buffer += data
    return bytes(buffer)


def head(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = [(n.strip().lower(), v.strip()) for n, _, v in (x.partition(":") for x in lines[1:])]
    return int(lines[0].split()[1]), headers, rest


def dechunk(body: bytes) -> tuple[bytes, dict[str, str], bool]:
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


def written(path: Path) -> str:
    """What the bootstrap wrote to ``path`` (it writes once the emulator has answered it)."""
    for _ in range(300):
        if path.exists() and (text := path.read_text()):
            return text
        threading.Event().wait(0.1)
    raise AssertionError(f"{path} was never written")


def fifo_gate(tmp_path: Path, name: str = "gate") -> Path:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    return fifo


def open_gate(fifo: Path) -> None:
    with open(fifo, "wb") as f:
        f.write(b"x")
