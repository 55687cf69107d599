"""Command-line parsing and the header rewriting, with property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.gateway.commands import (
    CommandError,
    is_non_smtp,
    parse_command,
    parse_path_and_params,
)
from mailwarden.gateway.headers import authserv_id, fold, rewrite_message, split_header


def test_commands() -> None:
    command = parse_command(b"mail FROM:<a@b.example> SIZE=10")
    assert (command.verb, command.arg, command.known) == (
        "MAIL",
        "FROM:<a@b.example> SIZE=10",
        True,
    )
    assert parse_command(b"XYZZY").known is False
    with pytest.raises(CommandError) as info:
        parse_command(b"EHLO \xff")
    assert info.value.reply.code == 500
    with pytest.raises(CommandError):
        parse_command(b"EHLO a\rb")


def test_paths_and_params() -> None:
    assert parse_path_and_params("FROM:<a@b.example>", "FROM") == ("<a@b.example>", {})
    assert parse_path_and_params("from: <a@b.example> size=10 BODY=8BITMIME SMTPUTF8", "FROM") == (
        "<a@b.example>",
        {"SIZE": "10", "BODY": "8BITMIME", "SMTPUTF8": None},
    )
    assert parse_path_and_params('TO:<"a>b"@c.example>', "TO") == ('<"a>b"@c.example>', {})
    for bad in ["TO:<a@b.example>", "FROM:a@b.example", "FROM:<a@b.example", "FROM:<a>x"]:
        with pytest.raises(CommandError):
            parse_path_and_params(bad, "FROM")
    with pytest.raises(CommandError):
        parse_path_and_params("FROM:<a@b.example> SIZE=1 SIZE=2", "FROM")
    with pytest.raises(CommandError):
        parse_path_and_params("FROM:<a@b.example> =x", "FROM")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"GET / HTTP/1.1", True),
        (b"POST /x HTTP/1.0", True),
        (b"CONNECT host:25 HTTP/1.1", True),
        (b"Host: mx.example.net", True),
        (b"USER root", True),
        (b"\x16\x03\x01\x02\x00", True),
        (b"MAIL FROM:<a@b.example>", False),
        (b"XYZZY", False),
    ],
)
def test_non_smtp(line: bytes, expected: bool) -> None:
    assert is_non_smtp(line) is expected


@given(st.binary(max_size=200))
def test_command_parser_never_crashes(line: bytes) -> None:
    try:
        command = parse_command(line)
    except CommandError as exc:
        error: CommandError | None = exc
    else:
        error = None
    if error is not None:
        assert error.reply.code == 500
        return
    assert command.verb == command.verb.upper()
    is_non_smtp(line)


@given(st.text(max_size=120), st.sampled_from(["FROM", "TO"]))
def test_argument_parser_never_crashes(arg: str, keyword: str) -> None:
    try:
        path, params = parse_path_and_params(arg, keyword)
    except CommandError as exc:
        error: CommandError | None = exc
    else:
        error = None
    if error is not None:
        assert error.reply.code in (501, 555)
        return
    assert path.startswith("<")
    assert path.endswith(">")
    assert all(key == key.upper() for key in params)


@given(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30).flatmap(
        lambda word: st.lists(st.just(word) | st.text("abc=;", min_size=1), max_size=30)
    )
)
def test_fold_keeps_the_value(words: list[str]) -> None:
    value = " ".join(words)
    folded = fold("X-Test", value).decode()
    assert folded.endswith("\r\n")
    lines = folded[:-2].split("\r\n")
    assert all(line.startswith("\t") for line in lines[1:])
    assert all(len(line) <= 78 for line in lines if " " in line.strip())
    unfolded = " ".join(folded[len("X-Test:") :].split())
    assert unfolded == " ".join(value.split())


def test_split_header() -> None:
    fields, rest = split_header(b"A: 1\r\nB: 2\r\n folded\r\n\r\nbody\r\n")
    assert fields == [b"A: 1\r\n", b"B: 2\r\n folded\r\n"]
    assert rest == b"\r\nbody\r\n"
    assert split_header(b"\r\nbody only\r\n") == ([], b"\r\nbody only\r\n")
    assert split_header(b"A: 1\r\n") == ([b"A: 1\r\n"], b"")


def test_authserv_id() -> None:
    assert authserv_id(" mx.example.net; spf=pass") == "mx.example.net"
    assert authserv_id("(comment) MX.Example.NET 1; none") == "mx.example.net"
    assert authserv_id("mx.example.net;") == "mx.example.net"
    assert authserv_id("") == ""


@given(st.binary(max_size=300))
def test_rewrite_never_crashes(message: bytes) -> None:
    out, removed = rewrite_message(message, b"Received: x\r\n", [("X-A", "b")], [], "mx.example")
    assert out.startswith(b"Received: x\r\nX-A: b\r\n")
    assert removed >= 0
