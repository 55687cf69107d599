"""SPF macros (RFC 7208 §7): the RFC's examples, IPv6 nibbles, exp-only letters, %{p}, and a
property test that whatever parses expands."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.spf.helpers import SENDER, checker_for, explained

from mailwarden.spf import SPFSyntaxError, parse_explanation


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
