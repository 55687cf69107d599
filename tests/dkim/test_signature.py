"""The DKIM-Signature parser (RFC 6376 §3.5, §6.1.1) and the header.b prefixes (RFC 6008)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.dkim import (
    Algorithm,
    Canon,
    DKIMReason,
    SignatureError,
    TagListError,
    decode_quoted_printable,
    encode_quoted_printable,
    header_b_prefixes,
    parse_signature,
)

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


# -- i= is dkim-quoted-printable (RFC 6376 §2.11) ----------------------------------------------


@pytest.mark.parametrize(
    ("written", "identity"),
    [
        ("alice=40example.com", "alice@example.com"),  # as dkimpy writes it
        ("alice=40Example.COM", "alice@example.com"),  # the domain is normalized after decoding
        ("=40example.com", "@example.com"),
        ("alice=40mail.example.com", "alice@mail.example.com"),
        ("x=3Dy=3Bz@example.com", "x=y;z@example.com"),
        ("a=20b@example.com", "a b@example.com"),
        ("a=2cb@example.com", "a,b@example.com"),  # ABNF hex digits ignore case
        ("a=40b@example.com", "a@b@example.com"),  # the last "@" separates the domain
        ("=C3=A9l=C3=A8ve@example.com", "élève@example.com"),  # UTF-8 octets (RFC 8616)
        ("alice=40\r\n example.com", "alice@example.com"),  # FWS is dropped
        ("alice @ example.com", "alice@example.com"),
        ("alice@example.com", "alice@example.com"),  # nothing encoded
    ],
)
def test_identity_is_decoded(written: str, identity: str) -> None:
    assert parse_signature(f"{BASE}; i={written}").identity == identity


@pytest.mark.parametrize(
    ("written", "reason", "code"),
    [
        ("alice=4", "malformed quoted-printable", DKIMReason.SYNTAX_ERROR),  # truncated
        ("alice=", "malformed quoted-printable", DKIMReason.SYNTAX_ERROR),
        ("alice=4G@example.com", "malformed quoted-printable", DKIMReason.SYNTAX_ERROR),
        ("alice=@example.com", "malformed quoted-printable", DKIMReason.SYNTAX_ERROR),
        ("alice=²0@example.com", "malformed quoted-printable", DKIMReason.SYNTAX_ERROR),
        ("alice=FF@example.com", "not UTF-8", DKIMReason.SYNTAX_ERROR),
        ("a=0D=0AX-Injected:=20yes@example.com", "control character", DKIMReason.SYNTAX_ERROR),
        ("a=00@example.com", "control character", DKIMReason.SYNTAX_ERROR),
        ("alice=40example.org", "not d= example.com", DKIMReason.IDENTITY_MISMATCH),
        ("alice=40badexample.com", "not d= example.com", DKIMReason.IDENTITY_MISMATCH),
        ("alice=2Eexample.com", "has no '@'", DKIMReason.SYNTAX_ERROR),
    ],
)
def test_malformed_identity(written: str, reason: str, code: DKIMReason) -> None:
    with pytest.raises(SignatureError, match=reason) as raised:
        parse_signature(f"{BASE}; i={written}")
    assert raised.value.code is code


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # no lone surrogates


@given(TEXT)
def test_quoted_printable_round_trip(text: str) -> None:
    """What the signer encodes, the verifier decodes to the same text; control characters
    are refused (no identity holds one, and no header may carry it)."""
    encoded = encode_quoted_printable(text)
    assert all(c == "=" or ("\x21" <= c <= "\x7e" and c != ";") for c in encoded)
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        with pytest.raises(TagListError, match="control character"):
            decode_quoted_printable(encoded)
    else:
        assert decode_quoted_printable(encoded) == text


@given(st.text(max_size=40))
def test_decoding_raises_only_tag_list_errors(text: str) -> None:
    with contextlib.suppress(TagListError):
        decoded = decode_quoted_printable(text)
        if "=" not in text:
            assert decoded == "".join(text.split())  # nothing to decode: FWS dropped only
