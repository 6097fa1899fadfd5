"""`sor invoke [URL]`: invokes a running RIE-compatible endpoint, printing the answer as it comes.

The endpoint is `sor local serve` or AWS's Runtime Interface Emulator (in a container image):
`POST /2015-03-31/functions/function/invocations`, as Lambda's Invoke API. The answer is
streamed to stdout chunk by chunk. Exit status: 0 success, 1 function error (an
`X-Amz-Function-Error` header, or an error status such as RIE's 502), 2 usage or unreachable.
This is the only module that imports `requests`: the client side, never `sor run`.
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
    """True when the answer is a function error (or the invocation did not run at all)."""
    return bool(headers.get("X-Amz-Function-Error")) or not 200 <= status < 300


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Invoke once; the payload goes to stdout as it arrives."""
    url = invoke_url(args.url or DEFAULT_URL)
    headers = request_headers(args)
    event = read_event(args.event)
    return _invoke(url, event, headers, sys.stdout.buffer)


def _invoke(url: str, event: bytes, headers: dict[str, str], out: BinaryIO) -> int:
    try:
        import requests  # only here: `requests` serves the client side
    except ImportError:  # e.g. sor from a Lambda layer, which leaves it out
        raise UsageError("sor invoke needs the requests package (pip install requests)") from None

    try:
        response = requests.post(
            url, data=event, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT, None)
        )
    except requests.RequestException as exc:
        raise Unreachable(f"cannot reach {url}: {reason(exc)}") from None
    with response:
        try:
            # chunk_size=None: each piece as the server sends it (a chunk, for a stream)
            for chunk in response.iter_content(chunk_size=None):
                out.write(chunk)
                out.flush()
        except requests.RequestException as exc:
            raise Unreachable(f"the answer from {url} broke off: {reason(exc)}") from None
    if failed(response.status_code, response.headers):
        kind = response.headers.get("X-Amz-Function-Error") or "error"
        print(f"sor invoke: HTTP {response.status_code} ({kind})", file=sys.stderr)
        return 1
    return 0
