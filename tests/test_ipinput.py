"""Addresses as people and files give them: one parser, one clear refusal per kind of mistake."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.ipinput import looks_like_ipv4, parse_ip_input


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ipaddress.IPv4Address("192.0.2.1")),
        (" 192.0.2.1\t", ipaddress.IPv4Address("192.0.2.1")),
        ("2001:db8::1", ipaddress.IPv6Address("2001:db8::1")),
        ("2001:DB8::1", ipaddress.IPv6Address("2001:db8::1")),
        ("::ffff:192.0.2.1", ipaddress.IPv4Address("192.0.2.1")),  # IPv4-mapped: the IPv4
        ("::", ipaddress.IPv6Address("::")),
    ],
)
def test_accepted(text: str, expected: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert parse_ip_input(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("fe80::1%eth0", "scoped IPv6 address"),
        ("fe80::1%1", "scoped IPv6 address"),
        ("::ffff:1.2.3.4%lo", "scoped IPv6 address"),
        ("999.1.1.1", "four numbers 0..255"),
        ("256.0.0.1", "four numbers 0..255"),
        ("1.2.3", "four numbers 0..255"),  # inet_aton shorthand is not an address in mail
        ("1.2.3.4.5", "four numbers 0..255"),
        ("01.2.3.4", "four numbers 0..255"),  # octal or decimal? neither
        ("1.2.3.4.", "four numbers 0..255"),
        ("192.0.2.1\x00", "control or non-ASCII"),
        ("192.0.2.1\r\nX: y", "control or non-ASCII"),
        ("１９２.0.2.1", "control or non-ASCII"),  # fullwidth digits
        ("١٩٢.0.2.1", "control or non-ASCII"),  # Arabic-Indic digits
        ("", "empty"),
        ("   ", "empty"),
        ("example.com", "invalid IP address 'example.com'"),
        ("2001:db8::g", "invalid IP address"),
        ("2001:db8::1/64", "invalid IP address"),
        ("[2001:db8::1]", "invalid IP address"),
    ],
)
def test_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_ip_input(text)


def test_message_names_what() -> None:
    with pytest.raises(ValueError, match="invalid --our-address 'x'"):
        parse_ip_input("x", "--our-address")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", True),
        ("999.1.1.1", True),
        ("1", True),
        ("1.2.3.4.", True),
        ("1.example", False),
        ("example.1", False),
        ("", False),
        ("1..2", False),
    ],
)
def test_looks_like_ipv4(text: str, expected: bool) -> None:
    assert looks_like_ipv4(text) is expected


@given(st.ip_addresses())
def test_every_address_round_trips(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    parsed = parse_ip_input(str(address))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        assert parsed == address.ipv4_mapped
    else:
        assert parsed == address


@given(st.text(max_size=60))
def test_any_text_is_an_address_or_a_value_error(text: str) -> None:
    """Never another exception; and what it accepts, ipaddress accepts too (without zone)."""
    try:
        parsed = parse_ip_input(text)
    except ValueError as exc:
        assert str(exc)  # noqa: PT017 - the message is the contract
        return
    assert "%" not in text
    assert ipaddress.ip_address(text.strip()) in (
        parsed,
        ipaddress.IPv6Address(f"::ffff:{parsed}") if parsed.version == 4 else parsed,
    )
