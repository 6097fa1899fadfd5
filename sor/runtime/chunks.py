"""The chunks of a streamed answer, read from the language runtime as `post` pulls them.

After an invoke's `stream` message (runtimes/PROTOCOL.md, streaming), the first chunk is read at
once: an `error` before it is an ordinary error answer, as Lambda sees no byte before it. The rest
are read one at a time, when `post` asks for the next (so a slow caller slows the runtime's
writes, never sor's memory), each before the invocation's graceful-timeout deadline. A stream
that does not reach its `end` (a timeout, a runtime that died or broke the protocol, `post`
closing it early) leaves the runtime out of step: it is stopped, and started again at the next
invocation. Imported only when a runtime opens a stream.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

from sor.errors import InvocationTimeout
from sor.runtime import protocol
from sor.runtime.answer import Stream, started

if TYPE_CHECKING:
    from sor.runtime.language import LanguageRuntime
    from sor.runtime.shared import SharedRuntime


def opened(
    runtime: LanguageRuntime | SharedRuntime,
    opening: protocol.StreamOpen,
    request_id: str,
    seal: str,
    deadline: float,
    timeout_message: str,
) -> Stream:
    """The `Stream` the runtime opened with ``opening``, its first chunk already read.

    Raises what `LanguageRuntime.invoke` raises (TimeoutError included: invoke makes it a
    timeout) when the stream fails before its first byte.
    """
    first = _read(runtime, request_id, seal, deadline)
    if isinstance(first, protocol.Error):
        raise runtime.function_error(first.error, first.xray)
    data = first.data if isinstance(first, protocol.StreamChunk) else None
    body = started(_body(runtime, data, request_id, seal, deadline, timeout_message))
    return Stream(opening.content_type, opening.prelude, body)


def _body(
    runtime: LanguageRuntime | SharedRuntime,
    first: bytes | None,
    request_id: str,
    seal: str,
    deadline: float,
    timeout_message: str,
) -> Generator[bytes, None, None]:
    in_step = False
    try:
        yield b""  # `started`: from here on, closing it runs the `finally`
        if first is None:  # `end` came first: an empty body
            in_step = True
            return
        yield first
        while True:
            try:
                message = _read(runtime, request_id, seal, deadline)
            except TimeoutError:
                raise InvocationTimeout(timeout_message) from None
            if isinstance(message, protocol.StreamChunk):
                yield message.data
                continue
            in_step = True  # `end` or `error`: the runtime waits for the next invoke
            if isinstance(message, protocol.Error):
                raise runtime.function_error(message.error, message.xray)
            return
    finally:
        if not in_step:  # cut short: the rest of its answer is given up
            runtime.abandon(request_id)


def _read(
    runtime: LanguageRuntime | SharedRuntime, request_id: str, seal: str, deadline: float
) -> protocol.StreamChunk | protocol.StreamEnd | protocol.Error:
    """The next message of an open stream: a chunk, its end, or the error that ends it.

    Raises TimeoutError, RuntimeExited (died, broke the protocol, or sent a message that has no
    place inside a stream).
    """
    try:
        message = runtime.next_message(request_id, seal, deadline)
    except ValueError:  # a line over MAX_MESSAGE: no chunk is that big
        what = "wrote a message longer than the protocol allows inside a stream"
        raise runtime.broken(what, request_id) from None
    if isinstance(message, (protocol.StreamChunk, protocol.StreamEnd, protocol.Error)):
        return message
    raise runtime.broken(f"sent {protocol.kind_of(message)} inside an open stream", request_id)
