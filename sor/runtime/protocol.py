"""The language runtime protocol's messages (runtimes/PROTOCOL.md), as pure functions.

sor writes an invoke as one line with the event's own bytes spliced in, and reads an answer
line into the result's JSON text (its own bytes, when the runtime wrote them where sor finds
them) or a well-formed ERROR, whatever the runtime sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sor.payload import RawJson, encode


class Broken(Exception):
    """An answer that breaks the protocol (the runtime is out of step: it is restarted)."""


class Error:
    """A handler's error: a well-formed ERROR, and the X-Ray cause the runtime sent, if any."""

    __slots__ = ("error", "xray")

    def __init__(self, error: dict[str, Any], xray: Mapping[str, Any] | None = None) -> None:
        self.error = error
        self.xray = xray


def invoke_line(
    request_id: str,
    event: Any,
    context: Mapping[str, Any],
    debug: Mapping[str, Any] | None,
    seal: str,
) -> bytes:
    """One invoke message, members in the documented order (type, id, event, context, debug,
    seal: last, so a tool-less adapter finds it at the end of the line)."""
    parts = [
        b'{"type":"invoke","id":',
        _text(request_id),
        b',"event":',
        encode(event),  # a RawJson goes as it came, on one line
        b',"context":',
        encode(dict(context)),
    ]
    if debug is not None:
        parts += [b',"debug":', encode(dict(debug))]
    parts += [b',"seal":"', seal.encode(), b'"}\n']  # hex digits: nothing to escape
    return b"".join(parts)


def read_answer(line: bytes, request_id: str, seal: str | None) -> RawJson | Error | None:
    """The answer ``line`` gives to ``request_id``; None when it answers another request or,
    with a ``seal`` (the adapter said in its `ready` that it echoes seals), lacks the invoke's
    seal (a line the handler forged: PROTOCOL.md, "The seal").

    Raises Broken for a line that is not a JSON object or whose type is neither result nor
    error. The result's bytes are taken from the line when it ends with them (as the shipped
    adapters write it); otherwise the decoded value is encoded again.
    """
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        raise Broken(f"wrote a line that is not JSON: {line[:80]!r}") from None
    if not isinstance(message, dict):
        raise Broken(f"wrote a message that is not an object: {line[:80]!r}")
    if message.get("id") != request_id or (seal is not None and message.get("seal") != seal):
        return None
    kind = message.get("type")
    if kind == "result":
        prefix = b'{"type":"result","id":' + _text(request_id)
        if isinstance(message.get("seal"), str):
            prefix += b',"seal":' + _text(message["seal"])
        prefix += b',"result":'
        body = line.rstrip()
        if body.startswith(prefix) and body.endswith(b"}"):
            return RawJson(body[len(prefix) : -1])
        return RawJson(encode(message.get("result")))
    if kind == "error":
        xray = message.get("xray")
        return Error(well_formed(message.get("error")), xray if isinstance(xray, dict) else None)
    raise Broken(f"answered with type {kind!r}")


def well_formed(error: Any) -> dict[str, Any]:
    """``error`` as an ERROR (errorType and errorMessage strings, stackTrace a list of strings);
    a malformed one keeps what it can and its message names what was wrong."""
    problems = []
    if not isinstance(error, dict):
        problems.append(f"the error is {_kind(error)}, not an object")
        error = {"errorMessage": error if isinstance(error, str) else None}
    kind, message, trace = (error.get(k) for k in ("errorType", "errorMessage", "stackTrace"))
    if not isinstance(kind, str) or not kind:
        problems.append(f"its errorType is {_kind(kind)}, not a name")
        kind = "Runtime.MalformedError"
    if not isinstance(message, str):
        if message is not None:
            problems.append(f"its errorMessage is {_kind(message)}, not a string")
        message = "" if message is None else str(message)
    if trace is None:
        trace = []
    elif not isinstance(trace, list) or not all(isinstance(line, str) for line in trace):
        problems.append("its stackTrace is not a list of strings")
        trace = [str(line) for line in trace] if isinstance(trace, list) else [str(trace)]
    out = {**error, "errorType": kind, "errorMessage": message, "stackTrace": trace}
    if problems:
        note = "the language runtime sent a malformed ERROR: " + "; ".join(problems)
        out["errorMessage"] = f"{message} ({note})" if message else note
    return out


def _text(value: str) -> bytes:
    return json.dumps(value).encode()


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    return f"a {type(value).__name__} ({str(value)[:40]!r})"
