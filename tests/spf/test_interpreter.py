"""The interpreter beyond the openspf suite: limits (RFC 7208 §4.6.4), mx and ptr (§5),
includes and redirects, broken explanations (§6.2)."""

from __future__ import annotations

from tests.spf.helpers import SENDER, checker_for, explained

from mailwarden.dns import StaticResolver
from mailwarden.spf import SPFChecker, SPFLimits, SPFStatus


async def test_broken_explanations_give_no_explanation() -> None:
    assert await explained("bad %{z} macro") is None
    zone: dict[str, dict[str, object]] = {
        "email.example.com": {"TXT": "v=spf1 -all exp=missing.example.com"},
    }
    result = await checker_for(zone).check_mailfrom("192.0.2.3", SENDER, "h.example")
    assert (result.result, result.explanation) == (SPFStatus.FAIL, None)


async def test_dns_term_limit() -> None:
    includes = " ".join(f"include:i{n}.example.com" for n in range(11))
    zone: dict[str, dict[str, object]] = {"example.com": {"TXT": f"v=spf1 {includes} -all"}}
    for n in range(11):
        zone[f"i{n}.example.com"] = {"TXT": "v=spf1 -all"}
    result = await checker_for(zone).check_mailfrom("192.0.2.1", "a@example.com", "h.example")
    assert result.result is SPFStatus.PERMERROR
    assert "more than 10 DNS-querying terms" in result.reason
    assert result.dns_mechanisms == 11
    ten = " ".join(f"include:i{n}.example.com" for n in range(10))
    zone["example.com"] = {"TXT": f"v=spf1 {ten} -all"}
    result = await checker_for(zone).check_mailfrom("192.0.2.1", "a@example.com", "h.example")
    assert result.result is SPFStatus.FAIL


async def test_limits_are_configurable() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {"TXT": "v=spf1 a:x.example.com a:y.example.com -all"},
    }
    strict = SPFLimits(void_lookups=1)
    result = await checker_for(zone, limits=strict).check_mailfrom(
        "192.0.2.1", "a@example.com", "h.example"
    )
    assert result.result is SPFStatus.PERMERROR
    assert "void" in result.reason


async def test_void_lookup_limit() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {"TXT": "v=spf1 a:n1.example.com mx:n2.example.com a:n3.example.com -all"},
    }
    result = await checker_for(zone).check_mailfrom("192.0.2.1", "a@example.com", "h.example")
    assert result.result is SPFStatus.PERMERROR
    assert result.void_lookups == 3
    zone["example.com"] = {"TXT": "v=spf1 a:n1.example.com mx:n2.example.com -all"}
    result = await checker_for(zone).check_mailfrom("192.0.2.1", "a@example.com", "h.example")
    assert result.result is SPFStatus.FAIL


async def test_more_than_ten_mx_records_is_a_permerror() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {
            "TXT": "v=spf1 mx -all",
            "MX": [f"{n} mx{n}.example.com" for n in range(11)],
        },
    }
    result = await checker_for(zone).check_mailfrom("192.0.2.1", "a@example.com", "h.example")
    assert result.result is SPFStatus.PERMERROR


async def test_mx_dual_cidr() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {"TXT": "v=spf1 mx/24//64 -all", "MX": "10 mx.example.com"},
        "mx.example.com": {"A": "192.0.2.10", "AAAA": "2001:db8::10"},
    }
    checker = checker_for(zone)
    assert (await checker.check_mailfrom("192.0.2.200", "a@example.com", "h")).result is (
        SPFStatus.PASS
    )
    assert (await checker.check_mailfrom("2001:db8::ffff", "a@example.com", "h")).result is (
        SPFStatus.PASS
    )
    assert (await checker.check_mailfrom("192.0.3.1", "a@example.com", "h")).result is (
        SPFStatus.FAIL
    )


async def test_ptr_validation_skips_names_whose_lookup_fails() -> None:
    """RFC 7208 §5.5: a DNS error while validating one PTR name skips only that name."""
    zone: dict[str, dict[str, object]] = {
        "example.com": {"TXT": "v=spf1 ptr -all"},
        "1.2.0.192.in-addr.arpa": {"PTR": ["broken.example.com", "good.example.com"]},
        "good.example.com": {"A": "192.0.2.1"},
    }
    static = StaticResolver(zone)
    static.fail("broken.example.com")
    result = await SPFChecker(static).check_mailfrom("192.0.2.1", "a@example.com", "h")
    assert result.result is SPFStatus.PASS


async def test_temperror_and_none_for_includes_and_redirects() -> None:
    zone: dict[str, dict[str, object]] = {
        "inc.example.com": {"TXT": "v=spf1 include:nothing.example.com -all"},
        "red.example.com": {"TXT": "v=spf1 redirect=nothing.example.com"},
        "slow.example.com": {"TXT": "v=spf1 include:timeout.example.com -all"},
    }
    static = StaticResolver(zone)
    static.fail("timeout.example.com")
    checker = SPFChecker(static)
    inc = await checker.check_mailfrom("192.0.2.1", "a@inc.example.com", "h")
    red = await checker.check_mailfrom("192.0.2.1", "a@red.example.com", "h")
    slow = await checker.check_mailfrom("192.0.2.1", "a@slow.example.com", "h")
    none = await checker.check_mailfrom("192.0.2.1", "a@nothing.example.com", "h")
    assert (inc.result, red.result) == (SPFStatus.PERMERROR, SPFStatus.PERMERROR)
    assert slow.result is SPFStatus.TEMPERROR
    assert "timeout" in slow.reason
    assert none.result is SPFStatus.NONE
