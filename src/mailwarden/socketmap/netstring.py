"""Netstrings (D. J. Bernstein, "Netstrings", 1997): `<length>:<data>,`, the framing of
Sendmail's and Postfix's socketmap protocol (socketmap_table(5))."""

from __future__ import annotations

import asyncio

__all__ = ["NetstringError", "encode", "parse", "read_netstring"]

MAX_LENGTH_DIGITS = 9


class NetstringError(ValueError):
    """Not a netstring, or one longer than allowed."""


def encode(data: bytes) -> bytes:
    return str(len(data)).encode("ascii") + b":" + data + b","


def parse(data: bytes, limit: int = 100_000) -> tuple[bytes, bytes]:
    """The first netstring of `data` and what follows it. NetstringError when `data` does
    not start with a complete, valid netstring (a prefix of one is an error too)."""
    colon = data.find(b":", 0, MAX_LENGTH_DIGITS + 1)
    if colon <= 0:
        raise NetstringError("no length before the colon")
    digits = data[:colon]
    if not digits.isdigit() or (len(digits) > 1 and digits.startswith(b"0")):
        raise NetstringError(f"bad length {digits[:20]!r}")
    length = int(digits)
    if length > limit:
        raise NetstringError(f"netstring of {length} octets, more than {limit}")
    end = colon + 1 + length
    if len(data) < end + 1:
        raise NetstringError("truncated netstring")
    if data[end : end + 1] != b",":
        raise NetstringError("no comma after the data")
    return data[colon + 1 : end], data[end + 1 :]


async def read_netstring(reader: asyncio.StreamReader, limit: int) -> bytes | None:
    """The next netstring from `reader`; None at a clean end of stream (between two).
    NetstringError when malformed or longer than `limit`."""
    digits = b""
    while True:
        char = await reader.read(1)
        if not char:
            if digits:
                raise NetstringError("truncated netstring")
            return None
        if char == b":":
            break
        if not char.isdigit() or len(digits) >= MAX_LENGTH_DIGITS:
            raise NetstringError("bad netstring length")
        digits += char
    if not digits or (len(digits) > 1 and digits.startswith(b"0")):
        raise NetstringError("bad netstring length")
    length = int(digits)
    if length > limit:
        raise NetstringError(f"netstring of {length} octets, more than {limit}")
    try:
        data = await reader.readexactly(length + 1)
    except asyncio.IncompleteReadError:
        raise NetstringError("truncated netstring") from None
    if not data.endswith(b","):
        raise NetstringError("no comma after the data")
    return data[:-1]
