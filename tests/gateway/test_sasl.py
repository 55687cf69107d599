"""SASL parsing for SMTP AUTH (RFC 4954, RFC 4616): tables of hostile input, properties."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.gateway.sasl import (
    MAX_FIELD,
    MAX_RESPONSE,
    Credentials,
    Mechanism,
    SASLCancelled,
    SASLError,
    decode_response,
    parse_auth_command,
    parse_login_field,
    parse_plain,
)


@pytest.mark.parametrize(
    ("data", "user", "password"),
    [
        (b"\x00alice\x00secret", "alice", "secret"),
        (b"alice\x00alice\x00secret", "alice", "secret"),  # authzid = authcid
        (b"\x00al\xc3\xafce\x00p\xc3\xa4ss w\xc3\xb6rd", "alïce", "päss wörd"),
    ],
)
def test_plain_accepts(data: bytes, user: str, password: str) -> None:
    assert parse_plain(data) == Credentials(Mechanism.PLAIN, user, password)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"bob\x00alice\x00secret", "Authorization identity not permitted"),
        (b"\x00\x00secret", "credentials invalid"),  # empty authcid
        (b"\x00alice\x00", "credentials invalid"),  # empty password
        (b"\x00\x00", "credentials invalid"),
        (b"alice", "credentials invalid"),
        (b"\x00alice\x00sec\x00ret", "credentials invalid"),  # a NUL in the password
        (b"\x00\x00alice\x00secret", "credentials invalid"),
        (b"\x00alice\xff\x00secret", "credentials invalid"),  # not UTF-8
        (b"\x00ali ce\x01\x00secret", "credentials invalid"),  # a control character
        (b"\x00" + b"a" * (MAX_FIELD + 1) + b"\x00secret", "credentials invalid"),
        (b"\x00alice\x00" + b"p" * (MAX_FIELD + 1), "credentials invalid"),
    ],
)
def test_plain_refuses(data: bytes, text: str) -> None:
    with pytest.raises(SASLError, match=text) as caught:
        parse_plain(data)
    assert caught.value.reply.code == 535


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("*", 501),
        ("", 501),
        ("YWxpY2U", 501),  # unpadded
        ("YWxp Y2U=", 501),  # whitespace
        ("YWxpY2U=\n", 501),
        ("YW=xpY2U", 501),  # padding inside
        ("Ã©Ã©", 501),
        ("A" * (MAX_RESPONSE + 4), 500),
    ],
)
def test_responses_that_are_refused(line: str, code: int) -> None:
    with pytest.raises(SASLError) as caught:
        decode_response(line)
    assert caught.value.reply.code == code
    assert isinstance(caught.value, SASLCancelled) == (line == "*")


def test_an_empty_initial_response_is_an_equals_sign() -> None:
    assert decode_response("=") == b""


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("PLAIN", (Mechanism.PLAIN, None)),
        ("plain AGEAYg==", (Mechanism.PLAIN, "AGEAYg==")),
        ("LOGIN", (Mechanism.LOGIN, None)),
    ],
)
def test_auth_command(arg: str, expected: tuple[Mechanism, str | None]) -> None:
    assert parse_auth_command(arg) == expected


@pytest.mark.parametrize(
    ("arg", "code"),
    [("", 501), ("PLAIN a b", 501), ("PLAIN ", 501), (" PLAIN", 501), ("CRAM-MD5", 504)],
)
def test_bad_auth_commands(arg: str, code: int) -> None:
    with pytest.raises(SASLError) as caught:
        parse_auth_command(arg)
    assert caught.value.reply.code == code


def test_the_password_never_shows_in_a_repr() -> None:
    assert "hunter2" not in repr(parse_plain(b"\x00alice\x00hunter2"))


FIELD = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda t: "\x00" not in t and len(t.encode()) <= MAX_FIELD
)


@given(FIELD.filter(str.isprintable), FIELD)
def test_plain_round_trip(user: str, password: str) -> None:
    """Whatever a client encodes correctly is read back exactly, through base64."""
    line = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    assert parse_plain(decode_response(line)) == Credentials(Mechanism.PLAIN, user, password)


@given(st.binary(max_size=800))
def test_plain_never_crashes(data: bytes) -> None:
    try:
        credentials = parse_plain(data)
    except SASLError as exc:
        refused = exc.reply.code
        assert refused == 535
    else:
        assert data.count(b"\x00") == 2
        assert credentials.username
        assert credentials.password


@given(st.text(max_size=3000))
def test_responses_never_crash(line: str) -> None:
    try:
        decoded = decode_response(line)
    except SASLError as exc:
        refused = exc.reply.code
        assert refused in (500, 501)
    else:
        assert line == "=" or base64.b64encode(decoded).decode() == line


@given(st.text(max_size=200))
def test_auth_arguments_never_crash(arg: str) -> None:
    try:
        mechanism, initial = parse_auth_command(arg)
    except SASLError as exc:
        refused = exc.reply.code
        assert refused in (501, 504)
    else:
        assert mechanism in Mechanism
        assert initial is None or initial


@given(st.binary(max_size=400), st.booleans())
def test_login_fields_never_crash(data: bytes, identity: bool) -> None:
    try:
        text = parse_login_field(data, identity=identity)
    except SASLError as exc:
        refused = exc.reply.code
        assert refused == 535
    else:
        assert text.encode() == data
