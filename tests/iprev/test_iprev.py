"""iprev (RFC 8601 §3) over static zones: a table of cases."""

from __future__ import annotations

import ipaddress

import pytest

from mailwarden.dns import Failure, StaticResolver
from mailwarden.iprev import MAX_PTR_NAMES, IprevReason, IprevStatus, check_iprev

ZONE = {
    # 192.0.2.1: PTR mail.example.com -> A 192.0.2.1 (pass)
    "1.2.0.192.in-addr.arpa": {"PTR": "mail.example.com."},
    "mail.example.com": {"A": "192.0.2.1", "AAAA": "2001:db8::1"},
    # 192.0.2.2: PTR to a name that resolves elsewhere (fail)
    "2.2.0.192.in-addr.arpa": {"PTR": "liar.example.net"},
    "liar.example.net": {"A": "198.51.100.9"},
    # 192.0.2.3: PTR to a name that does not exist (fail)
    "3.2.0.192.in-addr.arpa": {"PTR": "ghost.example.org"},
    # 192.0.2.4: two PTR names, the second confirms (pass)
    "4.2.0.192.in-addr.arpa": {"PTR": ["other.example.net", "ok.example.com"]},
    "other.example.net": {"A": "203.0.113.1"},
    "ok.example.com": {"A": ["192.0.2.99", "192.0.2.4"]},
    # 192.0.2.5: PTR name whose forward lookup times out (temperror)
    "5.2.0.192.in-addr.arpa": {"PTR": "slow.example.com"},
    # 192.0.2.7: the reverse zone exists but the address has no PTR (NODATA: permerror)
    "7.2.0.192.in-addr.arpa": {"TXT": "no ptr here"},
    # 192.0.2.8: a malformed PTR name
    "8.2.0.192.in-addr.arpa": {"PTR": "bad_name..-x"},
}


def resolver() -> StaticResolver:
    r = StaticResolver(ZONE)
    r.fail("slow.example.com", "A")
    r.fail("6.2.0.192.in-addr.arpa", "PTR")
    r.fail("9.2.0.192.in-addr.arpa", "PTR", Failure.SERVFAIL)
    return r


@pytest.mark.parametrize(
    ("ip", "status", "code", "name"),
    [
        ("192.0.2.1", IprevStatus.PASS, IprevReason.CONFIRMED, "mail.example.com"),
        ("192.0.2.2", IprevStatus.FAIL, IprevReason.NOT_CONFIRMED, None),
        ("192.0.2.3", IprevStatus.FAIL, IprevReason.NOT_CONFIRMED, None),
        ("192.0.2.4", IprevStatus.PASS, IprevReason.CONFIRMED, "ok.example.com"),
        ("192.0.2.5", IprevStatus.TEMPERROR, IprevReason.DNS_ERROR, None),
        ("192.0.2.6", IprevStatus.TEMPERROR, IprevReason.DNS_ERROR, None),
        ("192.0.2.7", IprevStatus.PERMERROR, IprevReason.NO_PTR, None),
        ("192.0.2.8", IprevStatus.PERMERROR, IprevReason.MALFORMED_PTR, None),
        ("192.0.2.9", IprevStatus.TEMPERROR, IprevReason.DNS_ERROR, None),
        ("192.0.2.200", IprevStatus.PERMERROR, IprevReason.NO_PTR, None),  # NXDOMAIN
        (
            "::ffff:192.0.2.1",
            IprevStatus.PASS,
            IprevReason.CONFIRMED,
            "mail.example.com",
        ),  # mapped: checked as IPv4
    ],
)
async def test_iprev_table(
    ip: str, status: IprevStatus, code: IprevReason, name: str | None
) -> None:
    result = await check_iprev(resolver(), ip)
    assert (result.result, result.reason_code) == (status, code)
    assert result.name == name
    assert result.reason == "" if status is IprevStatus.PASS else result.reason
    assert result.policy_iprev == str(result.ip)
    assert "symbol" not in result.to_dict()  # named and scored by the policy


async def test_ipv6_uses_nibble_ptr_and_aaaa() -> None:
    ip = ipaddress.IPv6Address("2001:db8::1")
    r = StaticResolver(
        {ip.reverse_pointer: {"PTR": "mail.example.com"}, "mail.example.com": {"A": "192.0.2.1"}}
    )
    assert (await check_iprev(r, ip)).result is IprevStatus.FAIL  # no AAAA yet
    r.add("mail.example.com", "AAAA", "2001:db8::1")
    result = await check_iprev(r, ip)
    assert result.result is IprevStatus.PASS
    assert ("mail.example.com", "AAAA") in [(n, str(t)) for n, t in r.queries]


async def test_fail_lists_every_checked_name_and_counts_queries() -> None:
    result = await check_iprev(resolver(), "192.0.2.2")
    assert result.names == ("liar.example.net",)
    assert "liar.example.net" in result.reason
    assert result.dns_queries == 2


async def test_at_most_ten_names_are_looked_up() -> None:
    names = [f"h{i}.example.com" for i in range(15)]
    zone: dict[str, dict[str, object]] = {"1.2.0.192.in-addr.arpa": {"PTR": names}}
    zone["h14.example.com"] = {"A": "192.0.2.1"}  # only the 15th would confirm
    r = StaticResolver(zone)  # type: ignore[arg-type]
    result = await check_iprev(r, "192.0.2.1")
    assert result.result is IprevStatus.FAIL
    assert len(result.names) == 15
    forward = [q for q in r.queries if q[0].startswith("h")]
    assert len(forward) == MAX_PTR_NAMES


async def test_pass_wins_over_a_temporary_failure_of_another_name() -> None:
    r = StaticResolver(
        {
            "1.2.0.192.in-addr.arpa": {"PTR": ["slow.example.com", "mail.example.com"]},
            "mail.example.com": {"A": "192.0.2.1"},
        }
    )
    r.fail("slow.example.com")
    assert (await check_iprev(r, "192.0.2.1")).result is IprevStatus.PASS
