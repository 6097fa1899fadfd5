"""The rules of sor.yml that JSON Schema cannot say well: handler forms, safe and unique
middleware names, timeouts no hook could ever get, hosts and networks, durations.

Pure functions over plain data; problems are placed through a `Locator` (a parsed file, or the
merged view of several files).
"""

from __future__ import annotations

import math
import re

from sor.config.model import RuntimeSettings
from sor.errors import Problem

TYPE_CHECKING = False

PathKey = tuple[str | int, ...]

# Lambda's maximum function timeout: no hook, and no grace period, can ever be longer.
MAX_SECONDS = 900.0

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0}
_FLOAT_CAP = 1e300
_DIR = r"(?:[A-Za-z0-9_][\w.-]*/)*"
_HANDLERS = {
    "python": re.compile(rf"^{_DIR}[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$"),
    "node": re.compile(rf"^{_DIR}[\w$-]+(?:\.[A-Za-z_$][\w$]*)+$"),
}
# \Z, not $: $ also matches before a final newline, and "a.b\n" is no host name.
_HOST = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z"
)


if TYPE_CHECKING:
    from typing import Any, Protocol

    class Locator(Protocol):
        """Places a problem at a config path (of a key with `key=True`)."""

        def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem: ...


def duration_seconds(value: Any) -> float | None:
    """Seconds of a duration (`0.5`, `250ms`, `2s`, `1m`); None when it is not one. A string
    may say zero (`0s`): the rules report it, the schema's pattern cannot. `.nan` and `.inf` are
    not durations: NaN compares false with everything, so no bound could ever catch it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float)):
        # min(): an integer too large for a float is still just "too long", not an overflow.
        return float(min(value, _FLOAT_CAP)) if value > 0 else None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT[match.group(2)]
    return None


def is_host_name(text: str) -> bool:
    """True for a DNS host name: dot-separated labels of letters, digits and inner hyphens, at
    most 63 characters each and 253 in all, optionally ending with a dot (no `a..b`)."""
    return _HOST.match(text) is not None


def name_problem(name: str) -> str | None:
    """Why a middleware name could escape its folder, or None when it is safe."""
    if not name:
        return "a middleware name must not be empty"
    for bad in ("/", "\\"):
        if bad in name:
            return (
                f"middleware name {name!r} must not contain {bad!r}: names are looked up inside "
                "middlewares/ folders (use `path` for an executable elsewhere)"
            )
    if ".." in name:
        return f"middleware name {name!r} must not contain '..': it would leave its folder"
    if name.startswith("."):
        return f"middleware name {name!r} must not start with '.'"
    if name != name.strip() or any(ord(c) < 32 for c in name):
        return f"middleware name {name!r} must not contain spaces at its ends or control characters"
    return None


def handler_problem(language: str, handler: str) -> str | None:
    """Why `handler` does not fit `language`, or None when it does (exec takes any handler)."""
    form = _HANDLERS.get(language)
    if form is None:
        return None
    if handler.startswith("/") or "../" in handler or handler.startswith(".."):
        return f"handler {handler!r} must stay inside the function folder: no leading '/', no '..'"
    if not form.match(handler):
        return (
            f"handler {handler!r} is not of the form module.function for {language} "
            "(e.g. handler.hello or src/handler.hello)"
        )
    return None


def semantic_problems(data: Any, at: Locator) -> list[Problem]:
    """The rules beyond the schema, for the parts of `data` that have the right types."""
    if not isinstance(data, dict):
        return []
    out: list[Problem] = []
    runtime = data.get("runtime")
    if isinstance(runtime, dict):
        out.extend(_runtime(runtime, at))
    timeouts = data.get("timeouts")
    if isinstance(timeouts, dict):
        for key in ("grace", "middleware"):
            out.extend(_too_long(timeouts.get(key), ("timeouts", key), at))
    middlewares = data.get("middlewares")
    if isinstance(middlewares, list):
        out.extend(_middlewares(middlewares, at))
    debug = data.get("debug")
    if isinstance(debug, dict) and isinstance(debug.get("allow"), list):
        for i, entry in enumerate(debug["allow"]):
            if isinstance(entry, str) and entry and not _host_or_network(entry):
                out.append(
                    at.problem(
                        ("debug", "allow", i),
                        f"{entry!r} is neither a host name nor a network (e.g. 10.0.0.0/8)",
                    )
                )
    return out


def _runtime(runtime: dict[str, Any], at: Locator) -> list[Problem]:
    out: list[Problem] = []
    language = runtime.get("language", RuntimeSettings.language)
    handler = runtime.get("handler")
    if isinstance(language, str) and isinstance(handler, str) and handler:
        problem = handler_problem(language, handler)
        if problem:
            out.append(at.problem(("runtime", "handler"), problem))
    if language == "exec" and "command" not in runtime:
        out.append(
            at.problem(
                ("runtime", "language"),
                "language exec needs `command`: the argv of the executable that serves the "
                "language runtime protocol (e.g. command: [./my-runtime])",
            )
        )
    return out


def _middlewares(items: list[Any], at: Locator) -> list[Problem]:
    out: list[Problem] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        if isinstance(name, str):
            problem = name_problem(name)
            if problem:
                out.append(at.problem(("middlewares", i, "name"), problem))
            elif name in first:
                out.append(
                    at.problem(
                        ("middlewares", i, "name"),
                        f"duplicate middleware name {name!r} (already middlewares[{first[name]}])",
                    )
                )
            else:
                first[name] = i
        timeout = item.get("timeout")
        if isinstance(timeout, dict):
            for hook, value in timeout.items():
                out.extend(_too_long(value, ("middlewares", i, "timeout", hook), at))
        else:
            out.extend(_too_long(timeout, ("middlewares", i, "timeout"), at))
    return out


def _too_long(value: Any, path: PathKey, at: Locator) -> list[Problem]:
    if isinstance(value, float) and not math.isfinite(value):
        return [
            at.problem(
                path,
                f"{_shown(value)} is not a duration: a duration is a finite number of seconds "
                "(0.5) or a string with a unit (250ms, 2s, 1m)",
            )
        ]
    seconds = duration_seconds(value)
    if seconds is None:
        return []
    if seconds == 0:
        return [at.problem(path, f"duration {value!r} must be more than 0")]
    if seconds <= MAX_SECONDS:
        return []
    return [
        at.problem(
            path,
            f"{_shown(value)} ({seconds:g} s) can never be reached: Lambda runs a function for at "
            f"most {MAX_SECONDS:g} s",
        )
    ]


def _shown(value: Any) -> str:
    """A duration as the user wrote it: YAML's spelling of NaN and infinity, long numbers cut."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**15:
        return "a number beyond 10**15"
    return repr(value)


def _host_or_network(entry: str) -> bool:
    try:
        import ipaddress  # only a config with an address list pays for it

        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return "/" not in entry and is_host_name(entry)
    return True
