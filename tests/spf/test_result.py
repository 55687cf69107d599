"""Every SPF result carries a reason code in RFC 7208's terms beside its words, and the
compiled engine gives the same code as the interpreter."""

from __future__ import annotations

import pytest

from mailwarden.dns import RdType, StaticResolver
from mailwarden.spf import SPFChecker, SPFReason, SPFStatus

FAR = {"TXT": "v=spf1" + " a" * 11 + " -all", "A": "203.0.113.9"}  # 11 lookups, none void
VOID = "v=spf1 a:n1.example.net a:n2.example.net a:n3.example.net -all"
MANY_MX = {"MX": [(n, f"mx{n}.example.net") for n in range(11)]}


@pytest.mark.parametrize(
    ("zone", "status", "code"),
    [
        ({"example.com": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}}, "pass", SPFReason.MATCHED),
        ({"example.com": {"TXT": "v=spf1 -all"}}, "fail", SPFReason.MATCHED),
        ({"example.com": {"TXT": "v=spf1 ~all"}}, "softfail", SPFReason.MATCHED),
        ({"example.com": {"TXT": "v=spf1 ip4:198.51.100.1"}}, "neutral", SPFReason.DEFAULT),
        ({}, "none", SPFReason.NO_RECORD),
        ({"example.com": {"TXT": "not spf"}}, "none", SPFReason.NO_RECORD),
        ({"example.com": {"TXT": ["v=spf1 -all", "v=spf1 +all"]}}, "permerror",
         SPFReason.MULTIPLE_RECORDS),
        ({"example.com": {"TXT": "v=spf1 bogus:x -all"}}, "permerror", SPFReason.SYNTAX_ERROR),
        ({"example.com": FAR}, "permerror", SPFReason.DNS_LIMIT),
        ({"example.com": {"TXT": VOID}}, "permerror", SPFReason.VOID_LIMIT),
        ({"example.com": {"TXT": "v=spf1 mx:m.example.net -all"}, "m.example.net": MANY_MX},
         "permerror", SPFReason.MX_LIMIT),
        ({"example.com": {"TXT": "v=spf1 include:gone.example.net -all"}}, "permerror",
         SPFReason.INCLUDE_NONE),
        ({"example.com": {"TXT": "v=spf1 redirect=gone.example.net"}}, "permerror",
         SPFReason.REDIRECT_NONE),
    ],
)  # fmt: skip
async def test_codes(zone: dict[str, dict[str, object]], status: str, code: SPFReason) -> None:
    for compile_after in (None, 1):  # interpreted, then compiled on first sight
        checker = SPFChecker(StaticResolver(zone), compile_after=compile_after)  # type: ignore[arg-type]
        result = await checker.check_mailfrom("192.0.2.1", "a@example.com", "h.example")
        assert (result.result, result.reason_code) == (SPFStatus(status), code), compile_after
        assert result.reason


async def test_dns_failure_and_invalid_domain() -> None:
    static = StaticResolver({})
    static.fail("example.com", RdType.TXT)
    result = await SPFChecker(static).check_mailfrom("192.0.2.1", "a@example.com", "h")
    assert (result.result, result.reason_code) == (SPFStatus.TEMPERROR, SPFReason.DNS_ERROR)
    bad = await SPFChecker(StaticResolver({})).check_mailfrom("192.0.2.1", "a@x..example", "h")
    assert (bad.result, bad.reason_code) == (SPFStatus.NONE, SPFReason.INVALID_DOMAIN)
