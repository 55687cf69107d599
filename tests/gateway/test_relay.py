"""Envelope paths and the closed relay: strict syntax, every relay trick refused."""

from __future__ import annotations

import ipaddress
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.gateway.relay import (
    Address,
    PathError,
    RelayControl,
    Trick,
    load_recipient_map,
    parse_path,
)

CONTROL = RelayControl.build(["example.net", "[192.0.2.25]"])


def test_plain_paths() -> None:
    assert parse_path("<bob@Example.NET>") == Address("bob", "example.net")
    assert parse_path("<>", null_ok=True) is None
    assert parse_path('<"john doe"@example.net>') == Address('"john doe"', "example.net", True)
    assert parse_path("<a@[192.0.2.25]>") == Address("a", "[192.0.2.25]")
    assert parse_path("<a@[IPv6:2001:DB8::1]>") == Address("a", "[IPv6:2001:db8::1]")
    assert parse_path("<@relay.example:bob@example.net>") == Address(
        "bob", "example.net", source_route=True
    )
    assert parse_path("<jösé@exämple.net>", smtputf8=True) == Address("jösé", "exämple.net")


@pytest.mark.parametrize(
    "path",
    [
        "bob@example.net",  # no brackets
        "<>",  # null where not allowed
        "<bob>",
        "<bob@>",
        "<@example.net>",
        "<bob@example..net>",
        "<bob@-example.net>",
        "<bob..x@example.net>",
        "<.bob@example.net>",
        '<"unterminated@example.net>',
        "<bob@[300.1.1.1]>",
        "<bob@[IPv6:zz::1]>",
        "<jösé@example.net>",  # non-ASCII without SMTPUTF8
        "<" + "a" * 65 + "@example.net>",
        "<bob@" + "a" * 63 + "." + ("b" * 63 + ".") * 3 + "com>",
        "<bob@exa mple.net>",
    ],
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(PathError):
        parse_path(path)


@pytest.mark.parametrize(
    ("path", "trick"),
    [
        ("<bob%evil.example@example.net>", Trick.PERCENT_HACK),
        ("<@a.example,@b.example:bob@example.net>", Trick.SOURCE_ROUTE),
        ("<@evil.example:bob@example.net>", Trick.SOURCE_ROUTE),
        ('<"bob@evil.example"@example.net>', Trick.QUOTED_AT),
        ('<"bob%evil.example"@example.net>', Trick.QUOTED_AT),
        ("<evil.example!bob@example.net>", Trick.BANG_PATH),
        ("<bob@example.net.>", Trick.TRAILING_DOT),
        ("<bob@[198.51.100.7]>", Trick.IP_LITERAL),
        ("<bob@[IPv6:2001:db8::7]>", Trick.IP_LITERAL),
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_relay_tricks_are_refused_even_for_trusted_clients(
    path: str, trick: Trick, trusted: bool
) -> None:
    try:
        address = parse_path(path)
    except PathError as exc:
        error: PathError | None = exc
    else:
        error = None
    if error is not None:
        assert error.trick is trick
        return
    assert address is not None
    reply = CONTROL.check(address, trusted=trusted)
    if trick is Trick.IP_LITERAL and trusted:
        assert reply is None  # a trusted client may send to a host literal
        return
    assert reply is not None
    assert (reply.code, reply.status) == (550, "5.7.1")
    assert str(trick) in reply.text


def test_local_and_foreign_domains() -> None:
    local = parse_path("<bob@example.net>")
    foreign = parse_path("<bob@elsewhere.example>")
    ours = parse_path("<bob@[192.0.2.25]>")
    assert local is not None
    assert foreign is not None
    assert ours is not None
    assert CONTROL.check(local, trusted=False) is None
    assert CONTROL.check(ours, trusted=False) is None
    refused = CONTROL.check(foreign, trusted=False)
    assert refused is not None
    assert (refused.code, refused.status) == (550, "5.7.1")
    assert "Relay access denied" in refused.text
    assert CONTROL.check(foreign, trusted=True) is None


def test_recipient_map(tmp_path: Path) -> None:
    path = tmp_path / "recipients"
    path.write_text("# who may receive\nbob@Example.NET\n@other.example  # all of it\n")
    control = RelayControl.build(["example.net", "free.example"], load_recipient_map(path))
    for address, expected in [
        ("<bob@example.net>", None),
        ("<carol@example.net>", (550, "5.1.1")),
        ("<anyone@other.example>", None),  # the map's domains are local too
        ("<anyone@free.example>", None),  # a local domain the map does not list: all accepted
        ("<bob@elsewhere.example>", (550, "5.7.1")),
    ]:
        parsed = parse_path(address)
        assert parsed is not None
        reply = control.check(parsed, trusted=False)
        assert (None if reply is None else (reply.code, reply.status)) == expected, address
    path.write_text("not an address\n")
    with pytest.raises(ValueError, match="line 1"):
        load_recipient_map(path)


_ATOM = st.text(string.ascii_letters + string.digits + "!#$&'*+/=?^_`{|}~-", min_size=1, max_size=8)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(
    local=st.lists(_ATOM, min_size=1, max_size=3).map(".".join),
    labels=st.lists(_LABEL, min_size=1, max_size=4),
)
def test_valid_addresses_round_trip(local: str, labels: list[str]) -> None:
    domain = ".".join(labels)
    address = parse_path(f"<{local}@{domain}>")
    assert address is not None
    assert str(address) == f"{local}@{domain}"
    assert parse_path(f"<{address}>") == address


@given(st.text(max_size=80), st.booleans())
def test_parser_never_crashes(text: str, smtputf8: bool) -> None:
    try:
        address = parse_path(text, smtputf8=smtputf8, null_ok=True)
    except PathError as exc:
        error: PathError | None = exc
    else:
        error = None
    if error is not None:
        assert error.reason
        return
    if address is not None:
        assert "@" in str(address)
        reply = CONTROL.check(address, trusted=False)
        assert reply is None or reply.code == 550


@given(st.ip_addresses())
def test_ip_literals(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    literal = f"[{ip}]" if ip.version == 4 else f"[IPv6:{ip}]"
    address = parse_path(f"<bob@{literal}>")
    assert address is not None
    assert address.literal
    reply = CONTROL.check(address, trusted=False)
    assert (reply is None) == (literal == "[192.0.2.25]")
