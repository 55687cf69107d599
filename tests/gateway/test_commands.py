"""Command-line parsing and the header rewriting, with property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.gateway.commands import (
    CommandError,
    is_non_smtp,
    parse_bdat,
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


# RFC 3030 §2: BDAT chunk-size [SP "LAST"]. What an attacker tries: no size, a signed, decimal,
# hexadecimal, exponent or non-ASCII-digit size, a size too large to be a chunk, a second
# argument that is not LAST, three arguments, tabs or other white space as separators.
BDAT_GOOD = {
    "100": (100, False),
    "0 LAST": (0, True),
    "7 last": (7, True),
    "007 Last": (7, True),
    "5  LAST": (5, True),  # runs of spaces are tolerated, as most servers do
    "999999999999999999": (999_999_999_999_999_999, False),
}
BDAT_BAD = [
    "",
    "LAST",
    "-1",
    "+1",
    "1.5",
    "0x10",
    "1e3",
    "١٢",  # Arabic-Indic digits
    "²",
    "1000000000000000000",  # 19 digits: not a chunk
    "10 LATER",
    "10 LAST LAST",
    "10 LAST x",
    "10\tLAST",
    "10\x0bLAST",
]


@pytest.mark.parametrize("arg", sorted(BDAT_GOOD))
def test_bdat_arguments(arg: str) -> None:
    assert parse_bdat(arg) == BDAT_GOOD[arg]


@pytest.mark.parametrize("arg", BDAT_BAD)
def test_bad_bdat_arguments_are_refused(arg: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_bdat(arg)
    assert info.value.reply.code == 501


@given(st.integers(0, 10**18 - 1), st.sampled_from(["", " LAST", " last", "  LAST"]))
def test_bdat_round_trip(size: int, last: str) -> None:
    assert parse_bdat(f"{size}{last}") == (size, bool(last))


@given(st.text(max_size=30))
def test_bdat_arguments_parse_or_are_refused(arg: str) -> None:
    words = [w for w in arg.split(" ") if w]
    size = words[0] if words else ""
    valid = (
        len(words) in (1, 2)
        and size.isascii()
        and size.isdigit()
        and len(size) <= 18
        and (len(words) == 1 or words[1].upper() == "LAST")
    )
    if valid:
        assert parse_bdat(arg) == (int(size), len(words) == 2)
    else:
        with pytest.raises(CommandError, match="Syntax: BDAT"):
            parse_bdat(arg)
