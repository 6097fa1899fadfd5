"""The streaming messages of the protocol, pure (sor.runtime.protocol), and a stream's metadata
as an `after` hook changes it (sor.runtime.answer.Stream)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from sor.runtime import protocol
from sor.runtime.answer import Stream


def _read(message: dict[str, Any]) -> Any:
    line = json.dumps({**message, "id": "r", "seal": "s"}).encode()
    return protocol.read_answer(line, "r", "s")


@pytest.mark.parametrize(
    ("data", "decoded"),
    [("", b""), ("YQ==", b"a"), ("YWI=", b"ab"), ("YWJj", b"abc"), ("YWJjZA==", b"abcd")],
)
def test_padded_base64_is_decoded(data: str, decoded: bytes) -> None:
    chunk = _read({"type": "chunk", "data": data})
    assert isinstance(chunk, protocol.StreamChunk) and chunk.data == decoded


@pytest.mark.parametrize(
    "data", ["YWJj=", "YQ=", "YQ", "YQ==YQ==", "Y!Q=", "YW Jj", "YWJj\n", "é===", "====", "A==="]
)
def test_anything_else_breaks_the_protocol(data: str) -> None:
    with pytest.raises(protocol.Broken, match="not base64"):
        _read({"type": "chunk", "data": data})


def test_a_chunk_is_at_most_one_mib() -> None:
    exact = base64.b64encode(b"x" * protocol.MAX_CHUNK).decode()
    assert len(_read({"type": "chunk", "data": exact}).data) == protocol.MAX_CHUNK
    over = base64.b64encode(b"x" * (protocol.MAX_CHUNK + 1)).decode()
    with pytest.raises(protocol.Broken, match="at most 1048576"):
        _read({"type": "chunk", "data": over})


def test_stream_openings() -> None:
    plain = _read({"type": "stream"})
    assert (plain.content_type, plain.prelude) == ("application/octet-stream", None)
    http = _read({"type": "stream", "prelude": {"statusCode": 200}})
    assert (http.content_type, http.prelude) == (protocol.HTTP_INTEGRATION, {"statusCode": 200})
    assert isinstance(_read({"type": "end"}), protocol.StreamEnd)
    with pytest.raises(protocol.Broken, match="contentType is a int"):
        _read({"type": "stream", "contentType": 3})


def _chunks() -> Iterator[bytes]:
    yield b"body"


def test_metadata_chooses_the_kind_of_stream() -> None:
    body = (c for c in _chunks())
    plain = Stream("text/plain", None, body)
    assert plain.metadata() == {"contentType": "text/plain"}
    http = plain.with_metadata({"statusCode": 201, "contentType": "x"})
    assert http.content_type == protocol.HTTP_INTEGRATION and http.chunks is body
    assert http.metadata() == {"statusCode": 201, "contentType": "x"}
    back = http.with_metadata({"contentType": "text/html"})
    assert (back.content_type, back.prelude) == ("text/html", None)
    for bad, named in [([1], "not list"), ({"contentType": ""}, "printable"), ("x", "not str")]:
        with pytest.raises(ValueError, match=named):
            plain.with_metadata(bad)
