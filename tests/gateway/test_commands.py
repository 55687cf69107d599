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
