"""A Lambda bootstrap for the emulator's tests, speaking the Runtime API over raw sockets.

Run as a script (`python raw_bootstrap.py`). It polls `invocation/next` from as many threads as
PROBE_WORKERS or AWS_LAMBDA_MAX_CONCURRENCY says (1 by default), each on its own keep-alive
connection, and does what the event's spec says. A function URL event carries its spec as JSON
in the query parameter `spec`, or in the request body; without one it is echoed back. Specs:

- {"action": "echo"}: the event is the response.
- {"action": "return", "raw": TEXT}: TEXT (bytes as given) is the response.
- {"action": "fail"}: an invocation error (Probe.Error).
- {"action": "stream", "chunks": [TEXT...], "gate": FIFO, "content_type": CT, "prelude": OBJ,
  "error": TYPE, "malformed": true, "status_file": PATH}: a streamed response (chunked,
  streaming mode); with `prelude`, an HTTP stream (the prelude JSON and 8 NUL bytes first).
  Before the last chunk it waits for one byte from FIFO (the test's handshake); `error` ends it
  with the error trailers;
  `malformed` ends it with a chunk size that is not one; the status the emulator answered is
  written to `status_file`.
- {"action": "big", "size": N}: a plain stream of N bytes, sent in 1 MiB chunks.
- {"action": "hold", "until": N, "seconds": S}: wait until N invocations have been in flight
  at once (at most 20 s), then S seconds; answers {"peak": the most in flight seen, "env": ...}.
- {"action": "late", "seconds": S, "status_file": PATH}: answer after S seconds (past the
  deadline) and write the status the emulator answered.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import threading
import time

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PREFIX = "/2018-06-01/runtime"
LOCK = threading.Condition()
STATE = {"in_flight": 0, "peak": 0}


class Connection:
    def __init__(self) -> None:
        host, port = API.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status = int(self.file.readline().split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.file.read(int(headers.get("content-length", "0")))
        return status, headers, body

    def request(self, method: str, path: str, body: bytes = b"", extra: str = "") -> tuple:
        head = f"{method} {PREFIX}{path} HTTP/1.1\r\nHost: {API}\r\n{extra}"
        self.send(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return self.response()


def spec_of(event: object) -> dict:
    if isinstance(event, dict) and "action" in event:
        return event
    if isinstance(event, dict) and "rawPath" in event:
        params = event.get("queryStringParameters") or {}
        if "spec" in params:
            return json.loads(params["spec"])
        if event.get("body") and not event.get("isBase64Encoded"):
            found = json.loads(event["body"])
            if isinstance(found, dict) and "action" in found:
                return found
    return {"action": "echo"}


def stream(conn: Connection, rid: str, spec: dict) -> None:
    content_type = spec.get("content_type", "application/octet-stream")
    chunks = [c.encode() for c in spec.get("chunks", [])]
    if "size" in spec:
        mib = b"x" * (1 << 20)
        chunks = [mib] * (spec["size"] >> 20) + [b"x" * (spec["size"] & ((1 << 20) - 1))]
        chunks = [c for c in chunks if c]
    if "prelude" in spec:
        content_type = "application/vnd.awslambda.http-integration-response"
        chunks.insert(0, json.dumps(spec["prelude"]).encode() + b"\0" * 8)
    conn.send(
        (
            f"POST {PREFIX}/invocation/{rid}/response HTTP/1.1\r\nHost: {API}\r\n"
            "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: {content_type}\r\n"
            "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
            "\r\n"
        ).encode()
    )
    for i, chunk in enumerate(chunks):
        if i == len(chunks) - 1 and spec.get("gate"):
            with open(spec["gate"], "rb") as gate:
                gate.read(1)
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    if spec.get("malformed"):  # a chunk size that is not one: the emulator answers 400
        conn.send(b"zz\r\n")
        status, _, _ = conn.response()
        with open(spec["status_file"], "w") as f:
            f.write(str(status))
        return
    trailers = b""
    if spec.get("error"):
        error = {"errorType": spec["error"], "errorMessage": "mid-stream", "stackTrace": []}
        encoded = base64.b64encode(json.dumps(error).encode())
        trailers = (
            b"Lambda-Runtime-Function-Error-Type: " + spec["error"].encode() + b"\r\n"
            b"Lambda-Runtime-Function-Error-Body: " + encoded + b"\r\n"
        )
    conn.send(b"0\r\n" + trailers + b"\r\n")
    status, _, _ = conn.response()
    if spec.get("status_file"):
        with open(spec["status_file"], "w") as f:
            f.write(str(status))


def hold(conn: Connection, rid: str, spec: dict) -> None:
    with LOCK:
        STATE["in_flight"] += 1
        STATE["peak"] = max(STATE["peak"], STATE["in_flight"])
        LOCK.notify_all()
        LOCK.wait_for(lambda: STATE["peak"] >= spec["until"], 20)
    time.sleep(spec.get("seconds", 0))
    with LOCK:
        peak = STATE["peak"]
        STATE["in_flight"] -= 1
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_LAMBDA_MAX")}
    conn.request(
        "POST", f"/invocation/{rid}/response", json.dumps({"peak": peak, "env": env}).encode()
    )


def serve() -> None:
    conn = Connection()
    while True:
        status, headers, body = conn.request("GET", "/invocation/next")
        if status != 200:
            sys.exit(f"next: {status}")
        rid = headers["lambda-runtime-aws-request-id"]
        event = json.loads(body)
        spec = spec_of(event)
        action = spec["action"]
        if action == "echo":
            conn.request("POST", f"/invocation/{rid}/response", body)
        elif action == "return":
            conn.request("POST", f"/invocation/{rid}/response", spec["raw"].encode())
        elif action == "fail":
            error = json.dumps({"errorType": "Probe.Error", "errorMessage": "asked to"}).encode()
            conn.request("POST", f"/invocation/{rid}/error", error)
        elif action in ("stream", "big"):
            stream(conn, rid, spec)
        elif action == "hold":
            hold(conn, rid, spec)
        elif action == "late":
            time.sleep(spec["seconds"])
            status, _, _ = conn.request("POST", f"/invocation/{rid}/response", b'"late"')
            with open(spec["status_file"], "w") as f:
                f.write(str(status))


def main() -> None:
    # PROBE_WORKERS polls with more threads than allowed, to show the emulator holds them back
    workers = int(
        os.environ.get("PROBE_WORKERS") or os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "1")
    )
    threads = [threading.Thread(target=serve, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
