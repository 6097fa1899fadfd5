"""Chunked transfer coding read piece by piece and written (sor.http.chunked)."""

from __future__ import annotations

import io

import pytest

from sor.http.chunked import BadChunk, ChunkedReader, TooLarge, encode_chunk, encode_last


def test_pieces_are_bounded_whatever_the_chunk_size() -> None:
    body = encode_chunk(b"a" * 10) + encode_chunk(b"b" * 3) + encode_last()
    reader = ChunkedReader(io.BufferedReader(io.BytesIO(body)), piece=4)
    assert list(reader.pieces()) == [b"aaaa", b"aaaa", b"aa", b"bbb"]
    assert reader.done and reader.trailers == {}


def test_trailers_are_kept_with_their_names_lower_cased() -> None:
    body = encode_chunk(b"x") + encode_last({"Lambda-Runtime-Function-Error-Type": "E", "X-B": "1"})
    reader = ChunkedReader(io.BytesIO(body))
    assert b"".join(reader.pieces()) == b"x"
    assert reader.trailers == {"lambda-runtime-function-error-type": "E", "x-b": "1"}


def test_extensions_and_bare_newlines_are_accepted() -> None:
    reader = ChunkedReader(io.BytesIO(b"3;ext=1\nabc\n0\n\n"))
    assert list(reader.pieces()) == [b"abc"]


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n",
        b"3\r\nab",
        b"3\r\nabcX\r\n",
        b"3\r\nabc\r\n",
        b"0\r\nX: 1\r\n",
        b"0\r\n" + b"X: 1\r\n" * 101,
    ],
)
def test_a_malformed_body_is_refused(body: bytes) -> None:
    with pytest.raises(BadChunk):
        list(ChunkedReader(io.BytesIO(body)).pieces())


def test_a_chunk_over_the_limit_is_refused_before_it_is_read() -> None:
    source = io.BytesIO(encode_chunk(b"a" * 5) + b"ffffffff\r\n" + b"b" * 100)
    reader = ChunkedReader(source)
    pieces = reader.pieces(limit=1000)
    assert next(pieces) == b"aaaaa"
    with pytest.raises(TooLarge) as raised:
        next(pieces)
    assert raised.value.size == 5 + 0xFFFFFFFF
    assert source.read() == b"b" * 100  # nothing of it was read


def test_an_empty_piece_is_never_a_chunk() -> None:
    assert encode_chunk(b"") == b""
    assert encode_chunk(b"hi") == b"2\r\nhi\r\n"
