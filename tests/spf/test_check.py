"""check_host() semantics beyond the openspf suite: macros, limits, identities, headers."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.dns import StaticResolver
from mailwarden.spf import (
    Identity,
    SPFChecker,
    SPFLimits,
    SPFStatus,
    SPFSyntaxError,
    auth_results_clause,
    parse_explanation,
    received_spf,
)

SENDER = "strong-bad@email.example.com"


def checker_for(zone: dict[str, dict[str, object]], **options: object) -> SPFChecker:
    return SPFChecker(StaticResolver(zone), **options)  # type: ignore[arg-type]


async def explained(text: str, ip: str = "192.0.2.3", **options: object) -> str | None:
    """The expansion of `text` as the exp= explanation of a failing policy."""
    zone: dict[str, dict[str, object]] = {
        "email.example.com": {"TXT": "v=spf1 -all exp=why.example.com"},
        "why.example.com": {"TXT": text},
    }
    result = await checker_for(zone, **options).check_mailfrom(ip, SENDER, "mx.example.org")
    assert result.result is SPFStatus.FAIL
    return result.explanation


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [  # RFC 7208 §7.4, sender strong-bad@email.example.com from 192.0.2.3
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        ("%{S}", "strong-bad%40email.example.com"),  # upper case: URL-escaped (§7.3)
        ("%% %_ %-", "%   %20"),
        ("%{h} %{c} %{v}", "mx.example.org 192.0.2.3 in-addr"),
    ],
)
async def test_macro_expansion_examples(macro: str, expansion: str) -> None:
    assert await explained(macro) == expansion


async def test_ipv6_macros() -> None:
    text = "%{ir}.%{v}._spf.%{d2} %{c} %{i}"
    nibbles = "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    expected = (
        f"{nibbles}.ip6._spf.example.com 2001:db8::cb01 {'.'.join(reversed(nibbles.split('.')))}"
    )
    assert await explained(text, ip="2001:db8::cb01") == expected


async def test_exp_only_letters_use_clock_and_receiver() -> None:
    text = "%{r} refused %{c} at %{t}"
    got = await explained(text, receiver="mx.receiver.example", clock=lambda: 1700000000.5)
    assert got == "mx.receiver.example refused 192.0.2.3 at 1700000000"


async def test_p_macro_prefers_a_validated_name_in_the_domain() -> None:
    zone: dict[str, dict[str, object]] = {
        "email.example.com": {"TXT": "v=spf1 -all exp=why.example.com"},
        "why.example.com": {"TXT": "%{p}"},
        "3.2.0.192.in-addr.arpa": {"PTR": ["other.example.net", "mx.email.example.com"]},
        "other.example.net": {"A": "192.0.2.3"},
        "mx.email.example.com": {"A": "192.0.2.3"},
    }
    result = await checker_for(zone).check_mailfrom("192.0.2.3", SENDER, "helo.example")
    assert result.explanation == "mx.email.example.com"
    zone["3.2.0.192.in-addr.arpa"] = {"PTR": "unvalidated.example.net"}
    result = await checker_for(zone).check_mailfrom("192.0.2.3", SENDER, "helo.example")
    assert result.explanation == "unknown"


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


async def test_helo_identity_and_null_sender() -> None:
    zone: dict[str, dict[str, object]] = {
        "mail.example.com": {"TXT": "v=spf1 a -all", "A": "192.0.2.10"},
    }
    checker = checker_for(zone)
    helo = await checker.check_helo("192.0.2.10", "mail.example.com")
    assert (helo.identity, helo.result, helo.sender) == (
        Identity.HELO,
        SPFStatus.PASS,
        "postmaster@mail.example.com",
    )
    bounce = await checker.check_mailfrom("192.0.2.11", "", "mail.example.com")
    assert (bounce.identity, bounce.result) == (Identity.MAILFROM, SPFStatus.FAIL)
    assert bounce.sender == "postmaster@mail.example.com"
    literal = await checker.check_helo("192.0.2.10", "[192.0.2.10]")
    assert literal.result is SPFStatus.NONE


async def test_ipv4_mapped_client_is_treated_as_ipv4() -> None:
    zone: dict[str, dict[str, object]] = {"example.com": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}}
    result = await checker_for(zone).check_mailfrom("::ffff:192.0.2.5", "a@example.com", "h")
    assert result.result is SPFStatus.PASS
    assert result.ip == ipaddress.ip_address("192.0.2.5")


async def test_unicode_sender_domain_is_checked_in_a_labels() -> None:
    zone: dict[str, dict[str, object]] = {
        "xn--bcher-kva.example": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
    }
    result = await checker_for(zone).check_mailfrom("192.0.2.5", "a@bücher.example", "h")
    assert result.result is SPFStatus.PASS
    assert result.domain == "xn--bcher-kva.example"


async def test_parsed_records_are_cached_and_lookups_counted() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {"TXT": "v=spf1 include:_spf.example.com -all"},
        "_spf.example.com": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
    }
    checker = checker_for(zone)
    first = await checker.check_mailfrom("192.0.2.5", "a@example.com", "h")
    second = await checker.check_mailfrom("192.0.2.6", "b@example.com", "h")
    assert first.dns_queries == second.dns_queries == 2
    assert len(checker._records) == 2


async def test_received_spf_header() -> None:
    zone: dict[str, dict[str, object]] = {"example.com": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}}
    result = await checker_for(zone).check_mailfrom("192.0.2.5", "a@example.com", "h.x")
    header = received_spf(result, "mx.example.net")
    assert header == (
        "Received-SPF: pass (mx.example.net: domain of a@example.com designates 192.0.2.5 as "
        "permitted sender) receiver=mx.example.net; client-ip=192.0.2.5; "
        'envelope-from="a@example.com"; helo=h.x; identity=mailfrom; '
        'mechanism="ip4:192.0.2.0/24";'  # quoted: not dot-atoms (RFC 7208 §9.1)
    )
    assert auth_results_clause(result) == (
        "spf=pass (domain of a@example.com designates 192.0.2.5 as permitted sender) "
        "smtp.mailfrom=a@example.com"
    )


async def test_headers_quote_awkward_values() -> None:
    zone: dict[str, dict[str, object]] = {"example.com": {"TXT": "v=spf1 -all"}}
    result = await checker_for(zone).check_mailfrom(
        "192.0.2.5", '"odd local"@example.com', "bad helo (x)"
    )
    header = received_spf(result, "mx.example.net")
    assert 'envelope-from="\\"odd local\\"@example.com"' in header
    assert 'helo="bad helo (x)"' in header
    clause = auth_results_clause(result)
    assert clause.endswith('smtp.mailfrom="\\"odd local\\"@example.com"')
    broken = await checker_for({"example.com": {"TXT": "v=spf1 foo"}}).check_mailfrom(
        "192.0.2.5", "a@example.com", "h"
    )
    assert "problem=" in received_spf(broken, "mx")


# Property-based: any macro-string that parses expands without raising.
MACRO_TEXT = st.lists(
    st.sampled_from(
        [
            "%{s}",
            "%{l}",
            "%{o}",
            "%{d}",
            "%{i}",
            "%{p}",
            "%{h}",
            "%{v}",
            "%{c}",
            "%{r}",
            "%{t}",
            "%{d2}",
            "%{ir}",
            "%{L-}",
            "%{l1r+-}",
            "%{d10r}",
            "%%",
            "%_",
            "%-",
            ".",
            "x",
            " ",
            "%{",
            "}",
            "%",
            "{",
            "%{q}",
            "%{d0}",
            "é",
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(MACRO_TEXT, st.sampled_from(["192.0.2.3", "2001:db8::1"]))
async def test_explanations_parse_then_expand_without_raising(text: str, ip: str) -> None:
    try:
        parse_explanation(text)
    except SPFSyntaxError:
        return
    if text.isascii():  # a non-ASCII TXT record is no explanation (RFC 7208 §6.2)
        assert isinstance(await explained(text, ip=ip), str)
