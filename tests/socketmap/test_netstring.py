"""Netstrings: the table of what parses and what does not, and properties."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.socketmap import NetstringError, encode, parse, read_netstring


@pytest.mark.parametrize(
    ("data", "value", "rest"),
    [
        (b"0:,", b"", b""),
        (b"5:hello,", b"hello", b""),
        (b"3:a,b,3:cde,", b"a,b", b"3:cde,"),
        (b"11:forward a@b,", b"forward a@b", b""),
    ],
)
def test_parses(data: bytes, value: bytes, rest: bytes) -> None:
    assert parse(data) == (value, rest)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b":,",
        b"5:hell,",
        b"5:hello",
        b"5:hello;",
        b"05:hello,",
        b"-1:,",
        b"x:,",
        b"5hello,",
        b"9999999999:",
        b"1000001:" + b"x" * 10,
        b" 5:hello,",
        b"5 :hello,",
    ],
)
def test_refuses(data: bytes) -> None:
    with pytest.raises(NetstringError):
        parse(data, limit=1_000_000)


async def read_all(data: bytes, limit: int = 100) -> list[bytes | None]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out: list[bytes | None] = []
    while True:
        item = await read_netstring(reader, limit)
        out.append(item)
        if item is None:
            return out


async def test_stream_reading() -> None:
    assert await read_all(b"1:a,0:,3:xyz,") == [b"a", b"", b"xyz", None]
    for bad in (b"1:a", b"2:a,;", b"101:" + b"x" * 101 + b",", b"12", b"a:"):
        with pytest.raises(NetstringError):
            await read_all(bad)


@given(st.binary(max_size=300))
def test_round_trip(value: bytes) -> None:
    assert parse(encode(value) + b"tail") == (value, b"tail")


@given(st.binary(max_size=200))
def test_parse_never_crashes(data: bytes) -> None:
    with contextlib.suppress(NetstringError):
        parse(data)


@given(st.binary(max_size=200))
async def test_stream_never_crashes(data: bytes) -> None:
    with contextlib.suppress(NetstringError):
        await read_all(data)
