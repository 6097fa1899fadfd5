"""Client of the Lambda Extensions API (`/2020-01-01/extension/...`), as an internal extension.

sor registers from the runtime process with no events: Lambda refuses `SHUTDOWN` to internal
extensions (403 `Extension.InvalidEventType`), but once any extension is registered it sends
the runtime SIGTERM at shutdown and gives it about 500 ms. The registration must come before the
runtime's first `invocation/next`, and the extension must then keep its own `event/next` call
open, or Lambda never ends init: a daemon thread does that on a connection of its own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from sor.errors import SorError
from sor.http.client import HttpConnection, ProtocolError

API_VERSION = "2020-01-01"
EXTENSION_NAME = "sor-shutdown"  # free-form for internal extensions; unique in the environment
NAME_HEADER = "Lambda-Extension-Name"
ID_HEADER = "Lambda-Extension-Identifier"


class ExtensionError(SorError):
    """The Extensions API refused sor's registration, or could not be reached."""

    error_type = "Sor.ExtensionError"


def refusal(status: int, body: bytes) -> str:
    """Why the API refused a call: its errorType and errorMessage when it sent them."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and ("errorType" in doc or "errorMessage" in doc):
        return f"HTTP {status} {doc.get('errorType', '')}: {doc.get('errorMessage', '')}".strip()
    return f"HTTP {status}: {body[:200]!r}"


class Extension:
    """sor as an internal extension of the execution environment at ``address`` (host:port)."""

    def __init__(self, address: str, name: str = EXTENSION_NAME) -> None:
        self.address = address
        self.name = name
        self.identifier: str | None = None
        self._base = f"/{API_VERSION}/extension"

    def register(self) -> str:
        """Register with no events; the extension identifier. Raises ExtensionError."""
        conn = HttpConnection(self.address)
        headers = {NAME_HEADER: self.name, "Content-Type": "application/json"}
        try:
            response = conn.request("POST", f"{self._base}/register", headers, b'{"events":[]}')
        except (OSError, ProtocolError) as exc:
            raise ExtensionError(f"cannot register with the Extensions API: {exc}") from None
        finally:
            conn.close()
        identifier = {k.lower(): v for k, v in response.headers.items()}.get(ID_HEADER.lower())
        if response.status != 200 or not identifier:
            why = refusal(response.status, response.body)
            raise ExtensionError(f"the Extensions API refused the registration: {why}")
        self.identifier = identifier
        return identifier

    def keep_waiting(self, on_end: Callable[[str], None]) -> threading.Thread:
        """Start the daemon thread that keeps `event/next` open; ``on_end`` is told why it
        stopped (it never does with no events, unless the API fails)."""
        assert self.identifier is not None, "register first"
        thread = threading.Thread(
            target=self._wait, args=(self.identifier, on_end), name="sor-extension", daemon=True
        )
        thread.start()
        return thread

    def _wait(self, identifier: str, on_end: Callable[[str], None]) -> None:
        conn = HttpConnection(self.address)
        headers = {ID_HEADER: identifier}
        try:
            while True:
                # No timeout, as AWS asks: with no events this call is answered only at the end.
                response = conn.request("GET", f"{self._base}/event/next", headers)
                if response.status != 200:
                    on_end(f"event/next answered {refusal(response.status, response.body)}")
                    return
                # An event nobody asked for (INVOKE, SHUTDOWN): nothing to do but ask again.
        except (OSError, ProtocolError) as exc:
            on_end(f"event/next failed: {exc}")
        finally:
            conn.close()
