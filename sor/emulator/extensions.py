"""The Extensions API of the embedded emulator, for extensions registered by the bootstrap.

`sor local` has no external extensions (no `/opt/extensions`), so every registration is an
internal one and is answered as Lambda answers those (RIE's `rapi/handler/agentregister.go`): no
`SHUTDOWN` event, no name twice, at most 10, and nothing once the runtime asked for its first
invocation. Pure state, no IO: the Runtime API server calls it under the sandbox's lock.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

PREFIX = "/2020-01-01/extension"
MAX_EXTENSIONS = 10  # Lambda's limit per function
MAX_REGISTER_BODY = 64 * 1024

Outcome = tuple[int, str, str]
"""(200, identifier, "") or (403, errorType, errorMessage)."""


def _events(body: bytes) -> list[str] | None:
    """The `events` of a registration body, or None when it is not one."""
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    events = doc.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return None
    return events


@dataclass
class Extensions:
    """The extensions one bootstrap registered (a new bootstrap starts with none)."""

    names: dict[str, str] = field(default_factory=dict)  # identifier -> name

    def register(self, name: str, body: bytes, closed: bool) -> Outcome:
        """Register ``name``; ``closed``: the runtime has asked for an invocation already."""
        if not name:
            return 403, "Extension.InvalidExtensionName", "Empty extension name"
        if closed:
            return 403, "Extension.RegistrationClosed", "Extension registration closed already"
        events = _events(body)
        if events is None:
            return 403, "InvalidRequestFormat", 'the body must be {"events": [...]}'
        if "SHUTDOWN" in events:
            return (
                403,
                "Extension.InvalidEventType",
                "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension",
            )
        if name in self.names.values():
            return (
                403,
                "Extension.InvalidExtensionState",
                "Extension with this name already registered",
            )
        if len(self.names) >= MAX_EXTENSIONS:
            return 403, "Extension.TooManyExtensions", "Too many extensions registered"
        identifier = str(uuid.uuid4())
        self.names[identifier] = name
        return 200, identifier, ""

    def known(self, identifier: str) -> bool:
        return identifier in self.names
