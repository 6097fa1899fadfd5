"""The language runtime protocol's messages (runtimes/PROTOCOL.md), as pure functions.

sor writes an invoke as one line with the event's own bytes spliced in, and reads an answer
line into the result's JSON text (its own bytes, when the runtime wrote them where sor finds
them) or a well-formed ERROR, whatever the runtime sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sor.limits import MAX_CHUNK
from sor.payload import RawJson, encode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
# What `encode` does to a value with no NaN and no lone surrogate, without building an encoder
# for every call (json.dumps does when given options): the context of every invoke.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
# json.dumps of a str: the request id and seal of every message.
_quoted = json.encoder.encode_basestring_ascii
# json.loads's own scanner, without its wrapping (encoding detection, white space): (value, end).
_scan: Callable[[str, int], tuple[Any, int]] = json.decoder.JSONDecoder().scan_once  # type: ignore[attr-defined]


class Broken(Exception):
    """An answer that breaks the protocol (the runtime is out of step: it is restarted)."""


class Error:
    """A handler's error: a well-formed ERROR, and the X-Ray cause the runtime sent, if any."""

    __slots__ = ("error", "xray")

    def __init__(self, error: dict[str, Any], xray: Mapping[str, Any] | None = None) -> None:
        self.error = error
        self.xray = xray


class StreamOpen:
    """A `stream` message: the answer is streamed, with this content type or HTTP prelude."""

    __slots__ = ("content_type", "prelude")

    def __init__(self, content_type: str, prelude: dict[str, Any] | None) -> None:
        self.content_type = content_type
        self.prelude = prelude


class StreamChunk:
    """A `chunk` message: the next bytes of the streamed body, decoded."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class StreamEnd:
    """An `end` message: the stream is complete."""

    __slots__ = ()


Message = RawJson | Error | StreamOpen | StreamChunk | StreamEnd
"""A decoded message answering one invoke (what `LanguageRuntime.next_message` returns)."""

DEFAULT_CONTENT_TYPE = "application/octet-stream"


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
        _context(context),
    ]
    if debug is not None:
        parts += [b',"debug":', encode(dict(debug))]
    parts += [b',"seal":"', seal.encode(), b'"}\n']  # hex digits: nothing to escape
    return b"".join(parts)


def read_answer(line: bytes, request_id: str, seal: str | None) -> Message | None:
    """The message ``line`` gives to ``request_id``; None when it answers another request or,
    with a ``seal`` (the adapter said in its `ready` that it echoes seals), lacks the invoke's
    seal (a line the handler forged: PROTOCOL.md, "The seal").

    Raises Broken for a line that is not a JSON object, whose type is none of result, error,
    stream, chunk, end, or whose streaming message is malformed. The result's bytes are taken
    from the line when it ends with them (as the shipped adapters write it); otherwise the
    decoded value is encoded again.
    """
    if seal is not None:
        fast = _sealed_result(line, request_id, seal)
        if fast is not None:
            return fast
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
    if kind in ("stream", "chunk", "end"):
        return _streaming(kind, message)
    raise Broken(f"answered with type {kind!r}")


def _sealed_result(line: bytes, request_id: str, seal: str) -> RawJson | None:
    """The result of a line laid out exactly as the shipped adapters write one, its value
    checked as JSON by the decoder's scanner alone; None for anything else (`read_answer` then
    decodes the whole line, which gives the same answer for such a line, at twice the cost)."""
    prefix = b'{"type":"result","id":' + _text(request_id) + b',"seal":' + _text(seal)
    prefix += b',"result":'
    body = line.rstrip()
    if not body.startswith(prefix) or not body.endswith(b"}"):
        return None
    value = body[len(prefix) : -1]
    try:
        text = value.decode()
        # One JSON value, nothing before or after it: the line is then exactly the object
        # {type, id, seal, result}, with no repeated member to override id or seal.
        if _scan(text, 0)[1] != len(text):
            return None
    except (StopIteration, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return RawJson(value)


def _streaming(kind: str, message: dict[str, Any]) -> Message:
    """A `stream`, `chunk` or `end` message checked (runtimes/PROTOCOL.md, streaming)."""
    if kind == "end":
        return StreamEnd()
    if kind == "chunk":
        data = message.get("data")
        if not isinstance(data, str):
            raise Broken(f"sent a chunk whose data is {_kind(data)}, not a base64 string")
        import binascii  # a C module: only streams pay for it

        size = len(data)
        padding = size - len(data.rstrip("="))
        try:
            raw = binascii.a2b_base64(data)  # skips characters outside the alphabet: see below
        except (binascii.Error, ValueError) as e:  # ValueError: not ASCII
            raise Broken(f"sent a chunk whose data is not base64 ({e})") from None
        # RFC 4648 with padding, checked in O(1) (a regular expression costs more than the
        # decoding): any character skipped, or padding inside, makes the bytes fewer.
        if size % 4 or padding > 2 or len(raw) != size // 4 * 3 - padding:
            raise Broken("sent a chunk whose data is not base64 (RFC 4648, with padding)")
        if len(raw) > MAX_CHUNK:
            raise Broken(f"sent a chunk of {len(raw)} bytes (at most {MAX_CHUNK})")
        return StreamChunk(raw)
    prelude, content_type = message.get("prelude"), message.get("contentType")
    if prelude is not None and content_type is not None:
        raise Broken("opened a stream with both contentType and prelude")
    if prelude is not None:
        if not isinstance(prelude, dict):
            raise Broken(f"opened a stream whose prelude is {_kind(prelude)}, not an object")
        return StreamOpen(HTTP_INTEGRATION, prelude)
    if content_type is None:
        content_type = DEFAULT_CONTENT_TYPE
    if not isinstance(content_type, str) or not content_type or not content_type.isprintable():
        raise Broken(f"opened a stream whose contentType is {_kind(content_type)}")
    return StreamOpen(content_type, None)


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


def kind_of(message: Message) -> str:
    """The protocol type of a decoded message, for a message naming it."""
    if isinstance(message, RawJson):
        return "a result"
    names = {StreamOpen: "stream", StreamChunk: "chunk", StreamEnd: "end", Error: "error"}
    return f"a {names[type(message)]!r}"


def _context(context: Mapping[str, Any]) -> bytes:
    """``encode(dict(context))``, at the cost of one C call when nothing needs its fallbacks."""
    try:
        return _COMPACT(dict(context)).encode()
    except (ValueError, TypeError, UnicodeEncodeError):  # NaN, a lone surrogate: as encode does
        return encode(dict(context))


def _text(value: str) -> bytes:
    if type(value) is str:
        return _quoted(value).encode()
    return json.dumps(value).encode()


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    return f"a {type(value).__name__} ({str(value)[:40]!r})"
