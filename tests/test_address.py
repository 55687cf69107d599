"""RFC 5322 address lists: the forms From fields take, and never a crash."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.address import AddressError, Mailbox, parse_address_list


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a@example.com", [Mailbox("", "a", "example.com")]),
        ("Test User <t@example.com>", [Mailbox("Test User", "t", "example.com")]),
        ('"Test, User" <t@example.com>', [Mailbox("Test, User", "t", "example.com")]),
        (
            "=?UTF-8?B?QmVkIEJhdGggJiBCZXlvbmQ=?=<BdBth&Byond@example.com>",
            [Mailbox("=?UTF-8?B?QmVkIEJhdGggJiBCZXlvbmQ=?=", "BdBth&Byond", "example.com")],
        ),
        (
            "Bad <s@example.org>,Test <t@example.com>",
            [Mailbox("Bad", "s", "example.org"), Mailbox("Test", "t", "example.com")],
        ),
        ("(comment) a.b@sub.example.com (x)", [Mailbox("", "a.b", "sub.example.com")]),
        ("a@bank.example.", [Mailbox("", "a", "bank.example")]),  # the root's dot
        ('"odd local"@example.com', [Mailbox("", "odd local", "example.com")]),
        ("<@relay.example:a@example.com>", [Mailbox("", "a", "example.com")]),
        (
            "team: a@example.com, b@example.org;",
            [Mailbox("", "a", "example.com"), Mailbox("", "b", "example.org")],
        ),
        ("undisclosed-recipients:;", []),
        (", a@example.com,,", [Mailbox("", "a", "example.com")]),
        ("a@[192.0.2.1]", [Mailbox("", "a", "[192.0.2.1]")]),
        ("Jörg <jörg@bücher.example>", [Mailbox("Jörg", "jörg", "bücher.example")]),
        ("Test (a (nested) comment) <t@example.com>", [Mailbox("Test", "t", "example.com")]),
    ],
)
def test_address_lists(value: str, expected: list[Mailbox]) -> None:
    assert parse_address_list(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        '"Test User"',
        "Test User",
        "<a@example.com",
        "a@",
        "@example.com",
        "a@example..com",
        "a@.example.com",
        '"unterminated <a@example.com>',
        "(unterminated a@example.com",
        "a@example.com>",
        "a@b@c",
        "team: a@example.com",
        "a@[192.0.2.1",
        "a\x00@example.com",
        ": a@example.com;",
        # RFC 5322 obs-domain with CFWS inside: read differently by different programs
        "a.b@sub . example.com",
        "a@bank.example. continuation",
        "a@bank (c) .example",
        "a@bank.example..",
    ],
)
def test_malformed(value: str) -> None:
    with pytest.raises(AddressError):
        parse_address_list(value)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_random_text_never_crashes(value: str) -> None:
    try:
        mailboxes = parse_address_list(value)
    except AddressError:
        return
    assert all(m.local_part and m.domain for m in mailboxes)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ['"', "(", ")", "<", ">", "@", ",", ":", ";", ".", "a", " ", "[", "]", "\\", "b.c"]
        ),
        max_size=30,
    )
)
def test_random_structure_never_crashes(parts: list[str]) -> None:
    with contextlib.suppress(AddressError):
        parse_address_list("".join(parts))
