"""Canonicalization (RFC 6376 §3.4): bodies and header fields, simple and relaxed."""

from __future__ import annotations

import pytest

from mailwarden.dkim import canonicalize_body, canonicalize_header


@pytest.mark.parametrize(
    ("body", "simple", "relaxed"),
    [
        (b"", b"\r\n", b""),
        (b"\r\n", b"\r\n", b""),
        (b"\r\n\r\n\r\n", b"\r\n", b""),
        (b"a", b"a\r\n", b"a\r\n"),
        (b"a \t b  \r\n\r\n", b"a \t b  \r\n", b"a b\r\n"),
        (b" \r\nx\t\r\n \t \r\n", b" \r\nx\t\r\n \t \r\n", b"\r\nx\r\n"),
        (b"trailing  ", b"trailing  \r\n", b"trailing\r\n"),
        (b"a\r\n\r\nb\r\n", b"a\r\n\r\nb\r\n", b"a\r\n\r\nb\r\n"),
    ],
)
def test_body_canonicalization(body: bytes, simple: bytes, relaxed: bytes) -> None:
    """RFC 6376 §3.4.3 / §3.4.4 (relaxed: an empty body stays empty, errata 3770)."""
    assert canonicalize_body(body, False) == simple
    assert canonicalize_body(body, True) == relaxed


def test_header_canonicalization_rfc_example() -> None:
    """RFC 6376 §3.4.6."""
    assert canonicalize_header(b"A", b" X\r\n", True) == b"a:X\r\n"
    assert canonicalize_header(b"B ", b" Y\t\r\n\tZ  ", True) == b"b:Y Z\r\n"
    assert canonicalize_header(b"A", b" X", False, crlf=False) == b"A: X"
