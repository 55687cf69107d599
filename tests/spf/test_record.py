"""The SPF record grammar (RFC 7208 §4.5, §5, §6, §7.1, §12) and its error reasons."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.spf import (
    Macro,
    MechanismKind,
    Qualifier,
    SPFSyntaxError,
    parse_explanation,
    parse_record,
)
from mailwarden.spf.record import parse_macro_string


def test_every_mechanism_and_modifier() -> None:
    record = parse_record(
        "v=spf1 +all -include:_spf.example.com ~a ?a:mail.example.com/24 a/24//64 mx "
        "mx:example.org//48 ptr ptr:example.net ip4:192.0.2.0/24 ip6:2001:db8::/32 "
        "exists:%{i}._spf.example.com redirect=_spf.example.com exp=why.example.com "
        "unknown-mod=%{d}"
    )
    kinds = [m.kind for m in record.mechanisms]
    assert kinds == [
        MechanismKind.ALL,
        MechanismKind.INCLUDE,
        MechanismKind.A,
        MechanismKind.A,
        MechanismKind.A,
        MechanismKind.MX,
        MechanismKind.MX,
        MechanismKind.PTR,
        MechanismKind.PTR,
        MechanismKind.IP4,
        MechanismKind.IP6,
        MechanismKind.EXISTS,
    ]
    qualifiers = [m.qualifier for m in record.mechanisms[:4]]
    assert qualifiers == [Qualifier.PASS, Qualifier.FAIL, Qualifier.SOFTFAIL, Qualifier.NEUTRAL]
    a24 = record.mechanisms[3]
    assert (a24.cidr4, a24.cidr6) == (24, 128)
    dual = record.mechanisms[4]
    assert (dual.cidr4, dual.cidr6, dual.domain) == (24, 64, None)
    assert record.mechanisms[6].cidr6 == 48
    assert record.mechanisms[9].network == ipaddress.ip_network("192.0.2.0/24")
    assert record.redirect is not None
    assert record.redirect.text == "_spf.example.com"
    assert record.exp is not None
    assert record.exp.text == "why.example.com"
    assert [m.name for m in record.modifiers] == ["redirect", "exp", "unknown-mod"]
    assert record.has_all


def test_case_and_spacing() -> None:
    record = parse_record("V=SPF1   IP4:192.0.2.1   -ALL  ")
    assert [m.kind for m in record.mechanisms] == [MechanismKind.IP4, MechanismKind.ALL]
    assert parse_record("v=spf1").mechanisms == ()


def test_host_bits_in_an_ip4_network_are_ignored() -> None:
    record = parse_record("v=spf1 ip4:192.0.2.77/24")
    assert record.mechanisms[0].network == ipaddress.ip_network("192.0.2.0/24")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("v=spf10 -all", "v=spf1"),
        ("spf1 -all", "v=spf1"),
        ("v=spf1 -all:foo", "takes no argument"),
        ("v=spf1 foo", "unknown mechanism"),
        ("v=spf1 include", "needs ':domain'"),
        ("v=spf1 exists", "needs ':domain'"),
        ("v=spf1 ip4", "needs ':address'"),
        ("v=spf1 ip4:192.0.2.300", "invalid address"),
        ("v=spf1 ip4:192.0.2.0/33", "invalid CIDR"),
        ("v=spf1 ip4:192.0.2.0/024", "invalid CIDR"),
        ("v=spf1 ip6:2001:db8::/129", "invalid CIDR"),
        ("v=spf1 ip6:fe80::1%eth0", "invalid address"),
        ("v=spf1 a:example.com/33", "invalid CIDR"),
        ("v=spf1 mx//129", "invalid CIDR"),
        ("v=spf1 a:foo", "top label"),
        ("v=spf1 a:example.123", "top label"),
        ("v=spf1 include:", "empty domain"),
        ("v=spf1 redirect=a.example.com redirect=b.example.com", "more than once"),
        ("v=spf1 exp=a.example.com exp=b.example.com", "more than once"),
        ("v=spf1 a:%{x}.example.com", "unknown macro letter"),
        ("v=spf1 a:%{c}.example.com", "only allowed in explanations"),
        ("v=spf1 a:%{d0}.example.com", "at least 1"),
        ("v=spf1 a:%{d!}.example.com", "delimiter"),
        ("v=spf1 a:%{d.example.com", "unterminated"),
        ("v=spf1 a:%x.example.com", "must be followed"),
        ("v=spf1 a:%{}.example.com", "empty macro"),
        ("v=spf1 \u00e9", "non-ASCII"),
        ("v=spf1 a:ex\tample.com", "control character"),
    ],
)
def test_syntax_errors_name_the_problem(record: str, reason: str) -> None:
    with pytest.raises(SPFSyntaxError, match=reason):
        parse_record(record)


def test_macros_parse_into_parts() -> None:
    spec = parse_macro_string("%{ir}.%{v}._spf.%{d2}", "t", allow_exp_letters=False)
    assert spec.parts[0] == Macro("i", None, True, "", False)
    assert spec.parts[2] == Macro("v", None, False, "", False)
    assert spec.parts[-1] == Macro("d", 2, False, "", False)
    escaped = parse_macro_string("%{Lr-}%%%_%-", "t", allow_exp_letters=False)
    assert escaped.parts[0] == Macro("l", None, True, "-", True)
    assert escaped.parts[1] == "% %20"


def test_explanation_strings_allow_spaces_and_exp_letters() -> None:
    spec = parse_explanation("%{c} at %{t} via %{r} is not allowed")
    assert [p.letter for p in spec.parts if isinstance(p, Macro)] == ["c", "t", "r"]
    with pytest.raises(SPFSyntaxError):
        parse_explanation("bad %{z}")


# Property-based: any text is either a record or an SPFSyntaxError, never another exception.
TERM_ALPHABET = st.sampled_from(
    [
        *list("+-~?:/%{}._=! "),
        "all",
        "a",
        "mx",
        "ptr",
        "ip4",
        "ip6",
        "include",
        "exists",
        "redirect",
        "exp",
        "192.0.2.1",
        "2001:db8::",
        "example.com",
        "d",
        "i",
        "r",
        "1",
        "24",
    ]
)


@given(st.lists(TERM_ALPHABET, max_size=30).map("".join))
def test_grammar_like_text_parses_or_raises_the_documented_error(body: str) -> None:
    try:
        record = parse_record("v=spf1 " + body)
    except SPFSyntaxError:
        return
    assert record.text == "v=spf1 " + body
    for mechanism in record.mechanisms:
        assert mechanism.kind in MechanismKind


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_the_documented_error(text: str) -> None:
    for candidate in (text, "v=spf1 " + text):
        with contextlib.suppress(SPFSyntaxError):
            parse_record(candidate)


@given(st.text(max_size=100))
def test_any_explanation_parses_or_raises_the_documented_error(text: str) -> None:
    try:
        spec = parse_explanation(text)
    except SPFSyntaxError:
        return
    assert spec.text == text


def _reference_network(kind: str, address: str, bits: int) -> object:
    """What ipaddress makes of an ip4:/ip6: term (the C parser must agree with it)."""
    try:
        if kind == "ip4":
            return ipaddress.IPv4Network((ipaddress.IPv4Address(address), bits), strict=False)
        if "%" in address:
            return SPFSyntaxError
        return ipaddress.IPv6Network((ipaddress.IPv6Address(address), bits), strict=False)
    except ValueError:
        return SPFSyntaxError


@given(
    st.sampled_from(["ip4", "ip6"]),
    st.one_of(
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda ip: ip.exploded),
        st.text(alphabet="0123456789abcdefABCDEF:.%", max_size=40),
    ),
    st.integers(0, 32),
)
def test_address_terms_agree_with_ipaddress(kind: str, address: str, bits: int) -> None:
    expected = _reference_network(kind, address, bits)
    try:
        record = parse_record(f"v=spf1 {kind}:{address}/{bits}")
    except SPFSyntaxError:
        assert expected is SPFSyntaxError
        return
    assert record.mechanisms[0].network == expected
