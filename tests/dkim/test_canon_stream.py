"""Streaming canonicalization (spooled bodies) equals canonicalizing the whole body."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.body import SpooledBody
from mailwarden.dkim import BodyHasher
from mailwarden.dkim.canon import StreamingBody, canonicalize_body

PIECES = st.sampled_from(
    [
        b"a",
        b"b c",
        b"  ",
        b"\t",
        b" ",
        b"\r\n",
        b"\r",
        b"\n",
        b"\r\n\r\n",
        b".",
        b"x  \t y",
        b"\x00",
    ]
)


def streamed(body: bytes, cuts: list[int], relaxed: bool) -> bytes:
    stream = StreamingBody(relaxed)
    out, start = [], 0
    for cut in sorted(set(cuts)):
        out.append(stream.feed(body[start:cut]))
        start = cut
    out.append(stream.feed(body[start:]))
    out.append(stream.finish())
    return b"".join(out)


@settings(max_examples=500)
@given(st.lists(PIECES, max_size=30).map(b"".join), st.lists(st.integers(0, 60)), st.booleans())
def test_streaming_equals_whole(body: bytes, cuts: list[int], relaxed: bool) -> None:
    assert streamed(body, cuts, relaxed) == canonicalize_body(body, relaxed)


@pytest.mark.parametrize(
    "body", [b"", b"\r\n", b"\r\n\r\n", b"abc", b"abc \r\n\r\n \r\n", b"a\r\n\r\nb\r\n\r\n"]
)
@pytest.mark.parametrize("relaxed", [False, True])
def test_edges(body: bytes, relaxed: bool) -> None:
    for cuts in ([], [1], [1, 2, 3], list(range(len(body)))):
        assert streamed(body, cuts, relaxed) == canonicalize_body(body, relaxed)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(PIECES, max_size=40).map(b"".join),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 50)),
)
def test_spooled_hashes_equal_in_memory_hashes(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, relaxed: bool, length: int | None
) -> None:
    path = Path(tmp_path_factory.mktemp("spool")) / "body"
    path.write_bytes(body)
    spooled = BodyHasher(SpooledBody(path, len(body)))
    spooled_chunks = SpooledBody(path, len(body))
    in_memory = BodyHasher(body)
    assert spooled.digest(relaxed, "sha256", length) == in_memory.digest(relaxed, "sha256", length)
    assert spooled.digest(relaxed, "sha1") == in_memory.digest(relaxed, "sha1")
    assert spooled.length(relaxed) == in_memory.length(relaxed)
    assert b"".join(spooled_chunks.chunks(7)) == body
    canonical = canonicalize_body(body, relaxed)
    assert in_memory.digest(relaxed) == hashlib.sha256(canonical).digest()
