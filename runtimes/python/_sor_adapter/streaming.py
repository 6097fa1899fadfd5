"""Streamed answers (runtimes/PROTOCOL.md, "Optional extension: streaming").

A handler that returns an iterator (``__next__``) or an async iterator (``__anext__``) of
``bytes``/``str`` chunks streams them; so does a dict whose ``body`` is one: an HTTP stream whose
prelude is its ``statusCode``, ``headers`` and ``cookies``, or a plain stream of another content
type with ``{"contentType": ..., "body": ...}``. The ``stream`` message goes just before the first
chunk (an empty chunk sends it alone): an exception before it is an ordinary ``error`` answer,
after it an ``error`` message that ends the stream. Imported only at a handler's first stream.
"""

from __future__ import annotations

import base64
import json

from _sor_adapter.errors import failure_of
from _sor_adapter.loading import Fault
from _sor_adapter.logs import log_error

# Bytes per chunk message, at most (PROTOCOL.md): a bigger chunk is split.
CHUNK = 1 << 20
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# What a function URL assumes when a streamed HTTP response leaves them out.
HTTP_DEFAULTS = (("statusCode", 200), ("headers", {}), ("cookies", []))
_HTTP_KEYS = frozenset(key for key, _ in HTTP_DEFAULTS)


class Stream:
    """One invocation's streamed answer, written on the answer pipe as the handler yields it.

    ``write`` writes one protocol line (blocking while the pipe is full: the backpressure),
    ``run_async`` runs a coroutine on the adapter's event loop.
    """

    def __init__(self, write, run_async, request_id, seal, env) -> None:
        self._write = write
        self._run_async = run_async
        self._request_id = request_id
        self._seal = seal
        self._env = env
        self._opening: dict[str, object] = {}
        self._open = False
        self._chunk_head = b'{"type":"chunk",' + _ids(request_id, seal) + b',"data":"'

    def answer(self, result: object) -> bytes:
        """Stream ``result``; the line left to write (``end``), or b"" when already answered.

        Raises what failed before the stream opened, for the caller's ordinary error answer.
        """
        body = self._opening_of(result)
        try:
            if hasattr(body, "__anext__"):
                self._run_async(self._pump_async(body))
            else:
                self._pump(body)
            if not self._open:  # no chunk at all: an empty body
                self._start()
        except Exception as exc:
            if not self._open:
                raise
            error, xray = failure_of(exc)
            log_error(error, self._request_id, self._env)
            self._send({"type": "error", "error": error, "xray": xray})
            return b""
        return _line(self._message("end"))

    def _opening_of(self, result):
        """The ``stream`` message's content (kept in ``_opening``) and the body to iterate."""
        if not isinstance(result, dict):
            self._opening = {"contentType": DEFAULT_CONTENT_TYPE}
            return result
        extra = sorted(map(repr, set(result) - _HTTP_KEYS - {"body", "contentType"}))
        if extra:
            _fail(
                f"a streamed response has unknown key(s) {', '.join(extra)}: an HTTP "
                "stream takes statusCode, headers, cookies and body; a plain one contentType "
                "and body"
            )
        if "contentType" in result:
            if set(result) & _HTTP_KEYS:
                _fail("a streamed response has contentType (a plain stream) and HTTP keys")
            content_type = result["contentType"]
            if (
                not isinstance(content_type, str)
                or not content_type.isprintable()
                or not content_type
            ):
                _fail(f"a stream's contentType must be a printable str, not {content_type!r}")
            self._opening = {"contentType": content_type}
        else:
            self._opening = {"prelude": _prelude(result)}
        return result["body"]

    def _pump(self, body) -> None:
        try:
            while True:
                try:
                    chunk = next(body)
                except StopIteration:
                    return
                self._emit(chunk)
        finally:
            close = getattr(body, "close", None)  # a generator's finally blocks run now
            if close is not None:
                close()

    async def _pump_async(self, body) -> None:
        try:
            while True:
                try:
                    chunk = await body.__anext__()
                except StopAsyncIteration:
                    return
                self._emit(chunk)
        finally:
            close = getattr(body, "aclose", None)
            if close is not None:
                await close()

    def _emit(self, chunk: object) -> None:
        if isinstance(chunk, str):
            try:
                data: bytes | bytearray | memoryview = chunk.encode("utf-8")
            except UnicodeEncodeError as e:
                raise Fault("Runtime.MarshalError", f"Unable to marshal response: {e}") from None
        elif isinstance(chunk, (bytes, bytearray, memoryview)):
            data = chunk
        else:
            raise Fault(
                "Runtime.MarshalError",
                "Unable to marshal response: a streamed chunk must be bytes or str, not "
                + type(chunk).__name__,
            )
        if not self._open:
            self._start()
        view = memoryview(data).cast("B")
        for start in range(0, len(view), CHUNK):
            data64 = base64.b64encode(view[start : start + CHUNK])
            self._write(self._chunk_head + data64 + b'"}\n')

    def _start(self) -> None:
        self._open = True
        self._send({"type": "stream", **self._opening})

    def _message(self, kind: str) -> dict[str, object]:
        message: dict[str, object] = {"type": kind, "id": self._request_id}
        if self._seal is not None:
            message["seal"] = self._seal
        return message

    def _send(self, fields: dict[str, object]) -> None:
        message = self._message(str(fields.pop("type")))
        message.update(fields)
        self._write(_line(message))


def _prelude(response: dict) -> dict[str, object]:
    """The HTTP stream's prelude, Lambda's defaults filling what the response leaves out."""
    prelude = {key: response.get(key, default) for key, default in HTTP_DEFAULTS}
    status = prelude["statusCode"]
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        _fail(
            f"a streamed HTTP response's statusCode must be an int from 100 to 599, not {status!r}"
        )
    headers = prelude["headers"]
    if not isinstance(headers, dict):
        _fail(f"a streamed HTTP response's headers must be a dict, not {type(headers).__name__}")
    clean: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or isinstance(value, bool):
            _fail(f"a streamed HTTP response's header {name!r} is not a str name with a value")
        if isinstance(value, (int, float)):
            value = str(value)  # as API Gateway and function URLs accept numbers
        if not isinstance(value, str):
            _fail(f"a streamed HTTP response's header {name!r} has a {type(value).__name__} value")
        clean[name] = value
    prelude["headers"] = clean
    cookies = prelude["cookies"]
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        _fail("a streamed HTTP response's cookies must be a list of str")
    return prelude


def _fail(message: str):
    raise Fault("Runtime.MarshalError", f"Unable to marshal response: {message}")


def _ids(request_id, seal) -> bytes:
    ids = b'"id":' + json.dumps(request_id).encode()
    if seal is not None:
        ids += b',"seal":' + json.dumps(seal).encode()
    return ids


def _line(message: dict[str, object]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
