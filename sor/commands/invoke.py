"""`sor invoke [URL]`: invokes a running RIE-compatible endpoint, printing the answer as it comes.

The endpoint is `sor local serve` or AWS's Runtime Interface Emulator (in a container image):
`POST /2015-03-31/functions/function/invocations`, as Lambda's Invoke API. The answer is
streamed to stdout chunk by chunk. Exit status: 0 success, 1 function error (an
`X-Amz-Function-Error` header or trailer, or an error status such as RIE's 502), 2 usage or
unreachable. The HTTP client is ``sor.http.streamed`` (it reads the trailers of a stream).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections.abc import Mapping
from typing import BinaryIO
from urllib.parse import urlsplit, urlunsplit

from sor.errors import Unreachable, UsageError

DEFAULT_URL = "http://127.0.0.1:9000"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
CONNECT_TIMEOUT = 10.0  # seconds; the answer itself may take as long as the function does


def invoke_url(url: str) -> str:
    """``url`` with RIE's invoke path when it has none; UsageError when it is not http(s)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not an http:// or https:// URL")
    path = parts.path if parts.path not in ("", "/") else INVOKE_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def client_context(text: str) -> str:
    """The `X-Amz-Client-Context` value: the JSON object ``text``, base64 (UsageError if not)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--client-context is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError("--client-context must be a JSON object")
    return base64.b64encode(text.encode()).decode("ascii")


def request_headers(args: argparse.Namespace) -> dict[str, str]:
    """The Invoke API headers the options ask for."""
    headers = {
        "Content-Type": "application/json",
        "X-Amz-Invocation-Type": "Event" if args.async_ else "RequestResponse",
    }
    if args.tenant_id is not None:
        if not args.tenant_id:
            raise UsageError("--tenant-id must not be empty")
        headers["X-Amz-Tenant-Id"] = args.tenant_id
    if args.client_context is not None:
        headers["X-Amz-Client-Context"] = client_context(args.client_context)
    return headers


def read_event(where: str | None) -> bytes:
    """The event: a file, stdin for ``-``, or ``{}``."""
    if where is None:
        return b"{}"
    if where == "-":
        return sys.stdin.buffer.read()
    try:
        with open(where, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"--event {where}: {exc.strerror or exc}") from None


def reason(exc: Exception) -> str:
    """The OS's words for a failed connection (`Connection refused`), else the whole text."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return found.group(1) if found else text


def failed(status: int, headers: Mapping[str, str]) -> bool:
    """True when the answer is a function error (or the invocation did not run at all);
    ``headers`` names lower-cased."""
    return bool(headers.get("x-amz-function-error")) or not 200 <= status < 300


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Invoke once; the payload goes to stdout as it arrives."""
    url = invoke_url(args.url or DEFAULT_URL)
    headers = request_headers(args)
    event = read_event(args.event)
    return _invoke(url, event, headers, sys.stdout.buffer)


def _invoke(url: str, event: bytes, headers: dict[str, str], out: BinaryIO) -> int:
    import http.client

    from sor.http import streamed  # only here: the client side

    try:
        response = streamed.post(url, event, headers, CONNECT_TIMEOUT)
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(f"cannot reach {url}: {reason(exc)}") from None
    try:
        for piece in response.pieces():
            out.write(piece)
            out.flush()
    except streamed.BrokenOff as exc:
        raise Unreachable(f"the answer from {url} broke off: {exc}") from None
    finally:
        response.close()
    error = stream_error(response.trailers)
    if error is not None:  # a streamed answer that ended in error after its first byte
        print(f"sor invoke: the stream ended in error: {error}", file=sys.stderr)
        return 1
    if failed(response.status, response.headers):
        kind = response.headers.get("x-amz-function-error") or "error"
        print(f"sor invoke: HTTP {response.status} ({kind})", file=sys.stderr)
        return 1
    return 0


def stream_error(trailers: Mapping[str, str]) -> str | None:
    """The error a stream's trailers report (the ERROR JSON when given), or None."""
    kind = trailers.get("lambda-runtime-function-error-type")
    body = trailers.get("lambda-runtime-function-error-body")
    if not kind and not body and not trailers.get("x-amz-function-error"):
        return None
    try:
        return base64.b64decode(body or "", validate=True).decode("utf-8") or kind or "Unhandled"
    except ValueError:  # binascii.Error and UnicodeDecodeError too
        return kind or "Unhandled"
