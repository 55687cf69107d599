"""The DKIM-Signature parser (RFC 6376 §3.5, §6.1.1) and the header.b prefixes (RFC 6008)."""

from __future__ import annotations

import pytest

from mailwarden.dkim import Algorithm, Canon, SignatureError, header_b_prefixes, parse_signature

BASE = "v=1; a=rsa-sha256; d=Example.COM; s=Sel; h=From : To; bh=AAAA; b=AA AA"


def test_fields_are_normalized() -> None:
    sig = parse_signature(BASE)
    assert sig.algorithm is Algorithm.RSA_SHA256
    assert (sig.domain, sig.selector) == ("example.com", "sel")
    assert sig.signed_headers == ("from", "to")
    assert (sig.header_canon, sig.body_canon) == (Canon.SIMPLE, Canon.SIMPLE)  # default c=
    assert sig.identity == "@example.com"  # i= defaults to "@" + d=
    assert sig.b_text == "AAAA"
    assert (sig.length, sig.timestamp, sig.expiration) == (None, None, None)


@pytest.mark.parametrize(
    ("extra", "field", "value"),
    [
        ("; c=relaxed", "canonicalization", "relaxed/simple"),
        ("; c=relaxed/relaxed", "canonicalization", "relaxed/relaxed"),
        ("; l=0", "length", 0),
        ("; t=10; x=10", "expiration", 10),
        ("; i=bob@mail.example.com", "identity", "bob@mail.example.com"),
        ("; i=@EXAMPLE.com", "identity", "@example.com"),
        ("; q=dns/txt", "domain", "example.com"),
        ("; z=From:a@b", "copied_headers", "From:a@b"),
    ],
)
def test_optional_tags(extra: str, field: str, value: object) -> None:
    assert getattr(parse_signature(BASE + extra), field) == value


def test_bytes_and_folded_values_parse_alike() -> None:
    folded = BASE.replace("; h=", ";\r\n\th=").encode()
    assert parse_signature(folded) == parse_signature(BASE)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("; i=x@example.org", "not d= example.com or a subdomain"),
        ("; i=x@badexample.com", "not d= example.com or a subdomain"),  # not a label boundary
        ("; l=-1", "decimal"),
        ("; l=" + "9" * 77, "decimal"),
        ("; t=1e3", "decimal"),
        ("; t=²", "decimal"),
    ],
)
def test_errors(extra: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        parse_signature(BASE + extra)


def test_header_b_prefixes_are_unique() -> None:
    assert header_b_prefixes(["abcdefghij", "abcdefghXY", "zzzzzzzzzz", ""]) == [
        "abcdefghi",
        "abcdefghX",
        "zzzzzzzz",
        "",
    ]
    assert header_b_prefixes(["same0000000", "same0000000"]) == ["same0000", "same0000"]
