"""The message model: lossless split, header access, §5.4.2 selection, LF input, limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.message import (
    HeaderField,
    Message,
    MessageError,
    MessageLimits,
    fold_field,
    read_message,
    to_crlf,
)

RAW = (
    b"Received: from a\r\n\tby b\r\n"
    b"From: Alice <a@example.com>\r\n"
    b"Subject : spaced name\r\n"
    b"received: from c\r\n"
    b"X-Empty:\r\n"
    b"\r\n"
    b"Body line\r\n\r\n"
)


def test_split_is_lossless_and_structured() -> None:
    message = Message.from_bytes(RAW)
    assert message.raw == RAW
    assert [f.name for f in message.fields] == [
        b"Received",
        b"From",
        b"Subject",
        b"received",
        b"X-Empty",
    ]
    assert message.fields[0].value == b" from a\r\n\tby b"
    assert message.fields[0].raw == b"Received: from a\r\n\tby b\r\n"
    assert message.fields[0].unfolded() == b"from a\tby b"
    assert message.fields[2].value == b" spaced name"
    assert message.fields[4].value == b""
    assert message.separator == b"\r\n"
    assert message.body == b"Body line\r\n\r\n"


def test_access_by_name_is_case_insensitive_and_ordered() -> None:
    message = Message.from_bytes(RAW)
    assert [f.value for f in message.get_all("RECEIVED")] == [b" from a\r\n\tby b", b" from c"]
    first = message.get("from")
    assert first is not None
    assert first.text() == "Alice <a@example.com>"
    assert message.get("cc") is None
    assert "subject" in message
    assert message.count("Received") == 2


def test_selection_is_bottom_up() -> None:
    """RFC 6376 §5.4.2: repeated names take instances from the bottom up, then nothing."""
    message = Message.from_bytes(RAW)
    chosen = message.select(["received", "from", "received", "received", "cc"])
    assert [f.value if f else None for f in chosen] == [
        b" from c",
        b" Alice <a@example.com>",
        b" from a\r\n\tby b",
        None,
        None,
    ]
    excluded = message.fields[3]
    assert message.select(["received"], exclude=excluded)[0] is message.fields[0]


@pytest.mark.parametrize(
    ("data", "fields", "separator", "body"),
    [
        (b"", 0, b"", b""),
        (b"\r\nbody only\r\n", 0, b"\r\n", b"body only\r\n"),
        (b"A: 1\r\n", 1, b"", b""),
        (b"A: 1", 1, b"", b""),
        (b"A: 1\r\n\r\n", 1, b"\r\n", b""),
        (b"A: 1\n\nbody\n", 1, b"\n", b"body\n"),
    ],
)
def test_edge_shapes(data: bytes, fields: int, separator: bytes, body: bytes) -> None:
    message = Message.from_bytes(data)
    assert (len(message.fields), message.separator, message.body) == (fields, separator, body)
    assert message.raw == data


def test_bare_lf_files_read_as_crlf(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(b"From: a\n b\nTo: c\n\nline\n")
    message = Message.from_file(path)
    assert message.raw == b"From: a\r\n b\r\nTo: c\r\n\r\nline\r\n"
    assert to_crlf(b"a\r\nb\nc") == b"a\r\nb\r\nc"
    assert read_message(b"A: 1\n\nx\n").body == b"x\r\n"


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b" "]), max_size=40).map(b"".join))
def test_to_crlf_widens_only_bare_lf(data: bytes) -> None:
    """Every LF not after a CR becomes CRLF; everything else, lone CRs included, is kept."""
    expected = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    assert to_crlf(data) == expected


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b" starts folded\r\n\r\n", "continuation line"),
        (b"From: a\r\nno colon here\r\n\r\n", "header line 2 is not a header field"),
        (b": empty name\r\n\r\n", "header line 1"),
        (b"Bad Name: x\r\n\r\n", "header line 1"),
    ],
)
def test_malformed_header_is_a_clear_error(data: bytes, error: str) -> None:
    with pytest.raises(MessageError, match=error):
        Message.from_bytes(data)


def test_limits() -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(11)) + b"\r\n"
    with pytest.raises(MessageError, match="more than 10 header fields"):
        Message.from_bytes(many, limits=MessageLimits(max_fields=10))
    assert len(Message.from_bytes(many, limits=MessageLimits(max_fields=11)).fields) == 11
    with pytest.raises(MessageError, match="over the limit of 20"):
        Message.from_bytes(
            b"Subject: " + b"x" * 30 + b"\r\n\r\n", limits=MessageLimits(max_header_bytes=20)
        )


def test_prepend_and_make() -> None:
    message = Message.from_bytes(b"From: a\r\n\r\nbody\r\n")
    field = HeaderField.make(b"X-New", b" 1")
    assert field.raw == b"X-New: 1\r\n"
    assert field.lname == "x-new"
    added = message.prepend([field.raw])
    assert added.raw == b"X-New: 1\r\nFrom: a\r\n\r\nbody\r\n"


# -- property-based -----------------------------------------------------------------------------
NAMES = st.text(alphabet=st.sampled_from("ABCXYZabcxyz-0123456789"), min_size=1, max_size=12)
VALUES = st.binary(max_size=40).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
)  # a line's content
FOLDED = st.lists(VALUES, min_size=1, max_size=3).map(lambda parts: b"\r\n ".join(parts))


@given(
    fields=st.lists(st.tuples(NAMES, FOLDED), max_size=12),
    body=st.binary(max_size=200),
    with_separator=st.booleans(),
)
def test_split_round_trip(
    fields: list[tuple[str, bytes]], body: bytes, with_separator: bool
) -> None:
    header = b"".join(name.encode() + b":" + value + b"\r\n" for name, value in fields)
    data = header + (b"\r\n" + body if with_separator else b"")
    if b"\x00" in header:  # strict reading refuses a NUL in the header section
        with pytest.raises(MessageError, match="NUL character"):
            Message.from_bytes(data)
    message = Message.from_bytes(data, strict=b"\x00" not in header)
    assert message.raw == data
    assert [(f.name.decode(), f.value) for f in message.fields] == fields
    if with_separator:
        assert message.body == body


@given(st.binary(max_size=300))
def test_splitter_never_crashes(data: bytes) -> None:
    for parse, expected in ((Message.from_bytes, data), (read_message, to_crlf(data))):
        try:
            message = parse(data)
        except MessageError:
            continue
        assert message.raw == expected
        for field in message.fields:
            assert field.raw.startswith(field.name)
            assert field.lname == field.name.decode().lower()


@given(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30).flatmap(
        lambda word: st.lists(st.just(word) | st.text("abc=; ", min_size=1), max_size=30)
    )
)
def test_fold_field_gives_the_value_back_exactly(words: list[str]) -> None:
    value = " ".join(words)
    folded = fold_field("X-Test", value)
    assert not folded.endswith("\r\n")
    lines = folded.split("\r\n")
    assert all(line.startswith(" ") for line in lines[1:])  # breaks go before a space
    # a line breaks only before a word: runs of spaces stay on their line (a line of nothing
    # but white space would be invalid), so only they may pass the width
    assert all(len(line.rstrip(" ")) <= 78 for line in lines if " " in line.strip())
    assert folded.replace("\r\n", "") == f"X-Test: {value}"  # RFC 5322 §2.2.3 unfolding


@pytest.mark.parametrize(
    ("name", "value"), [("X-A", "b\r\nBcc: victim@example.com"), ("X-A", "b\nc"), ("X:A", "b")]
)
def test_fold_field_refuses_line_breaks_and_colons(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="not a header field"):
        fold_field(name, value)


@given(st.binary(max_size=300))
def test_lenient_reading_keeps_every_byte(data: bytes) -> None:
    """Lenient, any header section is read (lines that are not fields become nameless ones)
    and the bytes come back exactly; strict, it is read the same or refused."""
    try:
        lenient = Message.from_bytes(data, strict=False)
    except MessageError as exc:
        assert "over the limit" in str(exc) or "more than" in str(exc)  # noqa: PT017
        return
    assert lenient.raw == data
    try:
        strict = Message.from_bytes(data)
    except MessageError:
        assert any(not f.lname for f in lenient.fields) or b"\x00" in data
        return
    assert strict == lenient
    assert all(f.lname for f in strict.fields)
