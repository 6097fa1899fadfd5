"""The ``_debugProxy`` policy: who may make a language runtime connect out to a debugger.

An event may carry ``"_debugProxy": "host:port"`` (the origin's convention). The key is always
taken out of the event, so a handler never sees it; a ``DebugTarget`` comes back only when
``debug.enabled`` is true and the host is allowed by ``debug.allow`` (host names or CIDR networks;
an empty list allows any host). Host names are compared as names, never resolved: a check made on
a DNS answer could differ from the address the runtime later connects to.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sor.config.model import DebugSettings
from sor.config.rules import is_host_name
from sor.logs import Log
from sor.values import frozen

KEY = "_debugProxy"
_SHOWN = 80  # how much of a refused value a warning may quote


@frozen
class DebugTarget:
    """Where the language runtime's debugger bridge connects to."""

    host: str
    port: int

    def as_dict(self) -> dict[str, Any]:
        """The ``debug`` member of the protocol's invoke message."""
        return {"host": self.host, "port": self.port}


def parse(value: Any) -> DebugTarget:
    """A target from ``"host:port"``, ``"[v6]:port"`` or ``{"host":..., "port":...}``.

    Raises ValueError saying what is wrong with the value.
    """
    if isinstance(value, dict):
        host, port = value.get("host"), value.get("port")
    elif isinstance(value, str):
        host, sep, port = value.strip().rpartition(":")
        if not sep:
            raise ValueError("expected host:port")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
    else:
        raise ValueError(f"expected a host:port string, not {type(value).__name__}")
    if not isinstance(host, str) or not host:
        raise ValueError("the host is missing")
    if not _valid_host(host):
        raise ValueError("the host is neither a host name nor an IP address")
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise ValueError("the port must be a number")
    if isinstance(port, str):
        if not (port.isascii() and port.isdigit()):
            raise ValueError("the port must be a number")
        port = int(port)
    if not 1 <= port <= 65535:
        raise ValueError("the port must be between 1 and 65535")
    return DebugTarget(host, port)


def allowed(host: str, allow: tuple[str, ...]) -> bool:
    """True when ``host`` is in the allow-list (an empty list allows any host)."""
    if not allow:
        return True
    address = _address(host)
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a host name entry
    return False


def extract(
    event: Any, settings: DebugSettings, log: Log, request_id: str = ""
) -> DebugTarget | None:
    """Take ``_debugProxy`` out of a dict event (in place); the target when it is allowed."""
    if not isinstance(event, dict) or KEY not in event:
        return None
    value = event.pop(KEY)
    if not settings.enabled:
        log.warning(f"{KEY} ignored: remote debugging is off (debug.enabled)", request_id)
        return None
    try:
        target = parse(value)
    except ValueError as exc:
        log.warning(f"{KEY} ignored: {exc}", request_id)
        return None
    if not allowed(target.host, settings.allow):
        log.warning(f"{KEY} refused: host {target.host[:_SHOWN]} is not in debug.allow", request_id)
        return None
    log.info(f"remote debugging through {target.host}:{target.port}", request_id)
    return target


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _valid_host(host: str) -> bool:
    # The same rule as debug.allow's entries in sor.yml (sor.config.rules), so a name the config
    # accepts is a name an event may use, and the reverse.
    return _address(host) is not None or is_host_name(host)
