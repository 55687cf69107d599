"""HELO checks: syntax, resolution, PTR/client match and forgery, as findings (reason codes
with details) that the policy names as symbols; nothing here scores or refuses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.dns import StaticResolver
from mailwarden.helo import HeloKind, HeloReason, check_helo, format_helo, parse_helo
from mailwarden.policy import HELO_SYMBOLS, helo_symbols

ZONE = {
    "mail.example.com": {"A": "192.0.2.1"},
    "1.2.0.192.in-addr.arpa": {"PTR": "mail.example.com"},
    "2.2.0.192.in-addr.arpa": {"PTR": "ptr-only.example.com"},
    "other.example.net": {"A": "198.51.100.1"},
    "ptr-only.example.com": {"A": "198.51.100.2"},
    "mx.ourdomain.example": {"A": "203.0.113.25"},
    "pretend.example.org": {"A": "203.0.113.25"},
    "v6.example.com": {"AAAA": "2001:db8::25"},
    "exists.example.com": {"TXT": "no address"},
}
OURS = {"our_names": ["mx.ourdomain.example"], "our_addresses": ["203.0.113.25"]}


async def symbols(helo: str, ip: str = "192.0.2.1", **kw: object) -> set[str]:
    r = StaticResolver(ZONE)  # type: ignore[arg-type]
    r.fail("slow.example.com")
    result = await check_helo(r, helo, ip, **{**OURS, **kw})  # type: ignore[arg-type]
    assert all(finding.detail for finding in result.findings)
    named = helo_symbols(result)
    assert [HELO_SYMBOLS[code] for code in result.reason_codes] == [s.name for s in named]
    assert [s.detail for s in named] == [f.detail for f in result.findings]
    return {s.name for s in named}


@pytest.mark.parametrize(
    ("helo", "ip", "expected"),
    [
        ("mail.example.com", "192.0.2.1", {"HELO_MATCHES_CLIENT", "HELO_MATCHES_PTR"}),
        ("MAIL.Example.COM.", "192.0.2.1", {"HELO_MATCHES_CLIENT", "HELO_MATCHES_PTR"}),
        ("other.example.net", "192.0.2.1", {"HELO_MISMATCH_PTR"}),
        ("ptr-only.example.com", "192.0.2.2", {"HELO_MATCHES_PTR"}),
        ("nowhere.example.com", "192.0.2.1", {"HELO_NORESOLVE"}),
        ("exists.example.com", "192.0.2.1", {"HELO_NORESOLVE"}),
        ("slow.example.com", "192.0.2.1", {"HELO_TEMPERROR"}),
        ("localhost", "192.0.2.1", {"HELO_NOT_FQDN"}),
        ("[192.0.2.1]", "192.0.2.1", {"HELO_IP_LITERAL"}),
        ("[192.0.2.9]", "192.0.2.1", {"HELO_IP_LITERAL_MISMATCH"}),
        ("[IPv6:2001:db8::1]", "2001:db8::1", {"HELO_IP_LITERAL"}),
        ("[IPv6:2001:db8::2]", "2001:db8::1", {"HELO_IP_LITERAL_MISMATCH"}),
        ("192.0.2.1", "192.0.2.1", {"HELO_BARE_IP"}),
        ("bad_name!.example", "192.0.2.1", {"HELO_BAD_SYNTAX"}),
        ("[300.1.1.1]", "192.0.2.1", {"HELO_BAD_SYNTAX"}),
        ("[192.0.2.1", "192.0.2.1", {"HELO_BAD_SYNTAX"}),
        ("", "192.0.2.1", {"HELO_BAD_SYNTAX"}),
        ("host.123", "192.0.2.1", {"HELO_BAD_SYNTAX"}),
        # our own identity, given by somebody else
        ("mx.ourdomain.example", "192.0.2.1", {"HELO_FORGED", "HELO_MISMATCH_PTR"}),
        ("pretend.example.org", "192.0.2.1", {"HELO_FORGED", "HELO_MISMATCH_PTR"}),
        ("[203.0.113.25]", "192.0.2.1", {"HELO_FORGED"}),
        ("203.0.113.25", "192.0.2.1", {"HELO_BARE_IP", "HELO_FORGED"}),
        # ... but not when it really is us
        ("mx.ourdomain.example", "203.0.113.25", {"HELO_MATCHES_CLIENT"}),
        ("v6.example.com", "2001:db8::25", {"HELO_MATCHES_CLIENT"}),
    ],
)
async def test_helo_table(helo: str, ip: str, expected: set[str]) -> None:
    assert await symbols(helo, ip) == expected


async def test_reason_codes_name_each_finding() -> None:
    r = StaticResolver(ZONE)  # type: ignore[arg-type]
    result = await check_helo(r, "203.0.113.25", "192.0.2.1", our_addresses=["203.0.113.25"])
    assert result.reason_codes == (HeloReason.BARE_IP, HeloReason.FORGED)
    assert result.reason.startswith("bare-ip: 203.0.113.25 is not an address literal; forged: ")
    data = result.to_dict()
    assert data["reason_codes"] == ["bare-ip", "forged"]
    assert "symbols" not in data  # named and scored by the policy, not the check
    assert "score" not in data


async def test_ptr_names_given_skip_the_ptr_lookup() -> None:
    r = StaticResolver(ZONE)  # type: ignore[arg-type]
    result = await check_helo(r, "other.example.net", "192.0.2.1", ptr_names=["other.example.net"])
    assert result.reason_codes == (HeloReason.MATCHES_PTR,)
    assert all(t != "PTR" for _, t in r.queries)


def test_parse_kinds() -> None:
    assert parse_helo("[IPv6:::ffff:192.0.2.1]").address == ipaddress.IPv4Address("192.0.2.1")
    assert parse_helo("[ipv6:2001:DB8::1]").kind is HeloKind.ADDRESS_LITERAL
    assert parse_helo("[IPv6:192.0.2.1]").kind is HeloKind.INVALID
    assert parse_helo("[2001:db8::1]").kind is HeloKind.INVALID  # v6 needs its tag
    assert parse_helo("Mail.Example.com.").name == "mail.example.com"
    assert parse_helo("a" * 64 + ".example").kind is HeloKind.INVALID


@given(st.text(max_size=300))
def test_parse_never_raises(text: str) -> None:
    parsed = parse_helo(text)
    assert isinstance(parsed.kind, HeloKind)
    if parsed.kind is HeloKind.INVALID:
        assert parsed.reason
    if parsed.kind is HeloKind.DOMAIN:
        assert parsed.name is not None
        assert parse_helo(format_helo(parsed)).name == parsed.name


@given(st.ip_addresses())
def test_literal_round_trip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    if address.version == 6 and address.ipv4_mapped is not None:
        return
    parsed = parse_helo(f"[IPv6:{address}]" if address.version == 6 else f"[{address}]")
    assert parsed.kind is HeloKind.ADDRESS_LITERAL
    assert parsed.address == address
    again = parse_helo(format_helo(parsed))
    assert (again.kind, again.address) == (HeloKind.ADDRESS_LITERAL, address)


@given(
    st.lists(
        st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True), min_size=1, max_size=5
    ),
    st.from_regex(r"[a-z]{2,10}", fullmatch=True),
)
def test_name_round_trip(labels: list[str], tld: str) -> None:
    name = ".".join([*labels, tld])
    parsed = parse_helo(name.upper())
    assert parsed.kind is HeloKind.DOMAIN
    assert format_helo(parsed) == name
    assert parse_helo(format_helo(parsed)).name == parsed.name
