"""Name and address helpers of mailwarden.dns."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.dns import is_domain_name, normalize, parse_ip, reverse_pointer, to_ascii


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("example.com", True),
        ("example.com.", True),
        ("_spf.example.com", True),
        ("localhost", True),
        ("a" * 63 + ".com", True),
        ("a" * 64 + ".com", False),
        (".".join(["a" * 63] * 4), False),  # 255 octets
        ("a..b", False),
        ("", False),
        (".", False),
        ("-a.com", False),
        ("a-.com", False),
        ("exa mple.com", False),
        ("bücher.example", False),  # U-labels must be converted first
    ],
)
def test_is_domain_name(name: str, ok: bool) -> None:
    assert is_domain_name(name) is ok


def test_to_ascii() -> None:
    assert to_ascii("bücher.example") == "xn--bcher-kva.example"
    assert to_ascii("example.com") == "example.com"
    with pytest.raises(ValueError, match="internationalized"):
        to_ascii("a" * 70 + "ü.example")


def test_parse_ip_unmaps_ipv4_mapped_ipv6() -> None:
    assert parse_ip("::ffff:192.0.2.1") == ipaddress.IPv4Address("192.0.2.1")
    assert parse_ip(" 2001:db8::1 ") == ipaddress.IPv6Address("2001:db8::1")
    with pytest.raises(ValueError, match="does not appear to be"):
        parse_ip("192.0.2.256")


def test_reverse_pointer_and_normalize() -> None:
    assert reverse_pointer(parse_ip("192.0.2.1")) == "1.2.0.192.in-addr.arpa"
    assert reverse_pointer(parse_ip("2001:db8::1")).endswith(".8.b.d.0.1.0.0.2.ip6.arpa")
    assert normalize("Example.COM.") == "example.com"


@given(st.text(max_size=300))
def test_name_checks_never_raise(text: str) -> None:
    result = is_domain_name(text)
    assert isinstance(result, bool)
    with contextlib.suppress(ValueError):
        assert isinstance(to_ascii(text), str)


def _domain_reference(name: str) -> bool:
    """The label-by-label reading of is_domain_name's rule (its regex must agree)."""
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > 253:
        return False
    for label in name.split("."):
        if not 0 < len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in label):
            return False
    return True


@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(st.text(alphabet="aZ09-_.\n\xe9", max_size=70), min_size=1, max_size=6).map(
            ".".join
        ),
    )
)
def test_is_domain_name_agrees_with_the_label_by_label_rule(text: str) -> None:
    assert is_domain_name(text) is _domain_reference(text)


@pytest.mark.parametrize(
    "name", ["a\n", "a.b\n", "a_.b", "_", "0", "a" * 63, ("a" * 61 + ".") * 4 + "a"]
)
def test_is_domain_name_edges(name: str) -> None:
    assert is_domain_name(name) is _domain_reference(name)


def _reference(text: str) -> object:
    """What ipaddress alone makes of `text` (the C fast paths must agree with it)."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return ValueError
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


ADDRESS_LIKE = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda ip: ip.exploded),
    st.text(alphabet="0123456789abcdefABCDEF:.% ", max_size=45),
)


@given(ADDRESS_LIKE)
def test_parse_ip_agrees_with_ipaddress(text: str) -> None:
    expected = _reference(text)
    if expected is ValueError:
        with pytest.raises(ValueError):  # noqa: PT011 - any ValueError, as ipaddress raises
            parse_ip(text)
    else:
        assert parse_ip(text) == expected
