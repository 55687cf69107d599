"""Property-based tests of the parsers: tag-lists, key records, signatures, canonicalization."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.dkim.helpers import ed_key

from mailwarden.dkim import (
    KeyRecordError,
    KeyType,
    SignatureError,
    TagListError,
    canonicalize_body,
    format_tag_list,
    key_record,
    parse_key_record,
    parse_signature,
    parse_tag_list,
    strip_tag_value,
)

TAG_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,6}", fullmatch=True)
TVAL = st.from_regex(r"[\x21-\x3a\x3c-\x7e]{1,12}", fullmatch=True)
TAG_VALUES = st.lists(TVAL, max_size=3).map(" ".join)
TAG_LISTS = st.dictionaries(TAG_NAMES, TAG_VALUES, max_size=8)
FWS = st.sampled_from(["", " ", "\t", "\r\n ", "  \r\n\t"])


@given(TAG_LISTS, FWS, st.booleans())
def test_tag_list_round_trip(tags: dict[str, str], fws: str, trailing: bool) -> None:
    text = format_tag_list(tags.items(), separator=f";{fws}") + (";" if trailing and tags else "")
    if tags:
        assert parse_tag_list(fws + text + fws) == tags
    assert parse_tag_list(text.encode()) == tags


@given(st.text(max_size=80))
def test_tag_list_parser_never_crashes(text: str) -> None:
    try:
        tags = parse_tag_list(text)
    except TagListError as exc:
        message = str(exc)
        tags = {}
        assert message
    for name, value in tags.items():
        assert name[0].isalpha()
        assert ";" not in value
        assert value == value.strip(" \t\r\n")


@given(st.binary(max_size=120))
def test_parsers_never_crash_on_bytes(data: bytes) -> None:
    for parse, error in (
        (parse_tag_list, TagListError),
        (parse_key_record, KeyRecordError),
        (parse_signature, SignatureError),
    ):
        reason = "parsed"
        try:
            parse(data)
        except error as exc:
            reason = str(exc)
        assert reason


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a=1; a=2", "more than once"),
        ("a=1;; b=2", "empty tag-spec"),
        ("a", "has no '='"),
        ("1a=x", "invalid tag name"),
        ("a=x\x00y", "control character"),
        ("a=x\r\ny", "not folding"),
        ("a=x\ny", "not folding"),
    ],
)
def test_tag_list_errors(text: str, error: str) -> None:
    with pytest.raises(TagListError, match=error):
        parse_tag_list(text)


@given(
    flags=st.lists(st.sampled_from(["y", "s", "x"]), max_size=3),
    services=st.lists(st.sampled_from(["email", "*", "tlsrpt"]), min_size=1, max_size=2),
    hashes=st.lists(st.sampled_from(["sha256", "sha1"]), min_size=1, max_size=2),
    with_version=st.booleans(),
    notes=st.from_regex(r"[a-z ]{0,10}", fullmatch=True),
)
def test_key_record_round_trip(
    flags: list[str],
    services: list[str],
    hashes: list[str],
    with_version: bool,
    notes: str,
) -> None:
    raw = base64.b64encode(
        ed_key().public_key().public_bytes_raw()  # type: ignore[attr-defined]
    ).decode()
    parts = (["v=DKIM1"] if with_version else []) + [
        "k=ed25519",
        f"h={':'.join(hashes)}",
        f"s={':'.join(services)}",
        f"t={':'.join(flags)}",
        f"n={notes}",
        f"p={raw[:20]} {raw[20:]}",  # FWS inside p= is allowed
    ]
    record = parse_key_record("; ".join(parts))
    assert record.key_type is KeyType.ED25519
    assert record.key_bits == 256
    assert record.flags == tuple(flags)
    assert record.service_types == tuple(services)
    assert record.hash_algorithms == tuple(hashes)
    assert record.testing == ("y" in flags)
    assert record.allows_email() == bool({"email", "*"} & set(services))
    assert record.notes == notes.strip()


def test_key_record_from_keygen_parses() -> None:
    record = parse_key_record(key_record(ed_key()))
    assert record.public_key is not None
    assert not record.revoked


@given(st.binary(max_size=200))
def test_body_canonicalization_properties(body: bytes) -> None:
    body = body.replace(b"\n", b"\r\n")
    simple = canonicalize_body(body, False)
    relaxed = canonicalize_body(body, True)
    assert simple.endswith(b"\r\n")
    assert not simple.endswith(b"\r\n\r\n")
    assert relaxed == b"" or (relaxed.endswith(b"\r\n") and not relaxed.endswith(b"\r\n\r\n"))
    assert b" \r\n" not in relaxed
    assert b"\t" not in relaxed
    assert b"  " not in relaxed
    assert canonicalize_body(relaxed, True) == relaxed  # idempotent
    assert canonicalize_body(simple, False) == simple


@given(TAG_LISTS)
def test_strip_tag_value(tags: dict[str, str]) -> None:
    tags = {**tags, "b": "c2lnbmF0dXJl"}
    text = format_tag_list(tags.items()).encode()
    stripped = parse_tag_list(strip_tag_value(text))
    assert stripped == {**tags, "b": ""}


def reference_relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 written line by line, as plainly as possible."""
    lines = body.split(b"\r\n")
    out = []
    for line in lines:
        line = re.sub(rb"[ \t]+", b" ", line)
        line = re.sub(rb"[ \t]+\Z", b"", line)
        out.append(line)
    text = b"\r\n".join(out)
    while text.endswith(b"\r\n"):
        text = text[:-2]
    return text + b"\r\n" if text else b""


@given(
    st.lists(
        st.sampled_from([b" ", b"\t", b"  ", b"a", b"b c", b"\r\n", b"\r", b"\n", b"x "]),
        max_size=40,
    )
)
def test_relaxed_body_matches_the_rfc_text(pieces: list[bytes]) -> None:
    body = b"".join(pieces)
    assert canonicalize_body(body, True) == reference_relaxed_body(body)
