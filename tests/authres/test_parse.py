"""Authentication-Results parsing: grammar corners, strictness, and property-based round trips."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.authres import (
    AuthenticationResults,
    ParseError,
    Property,
    ResInfo,
    parse_arc_authentication_results,
    parse_authentication_results,
    parse_field,
    parse_with_warnings,
)


def test_none_form_with_version_and_comment() -> None:
    parsed = parse_authentication_results("mx.example.org 1 ; none (nothing checked)")
    assert parsed == AuthenticationResults("mx.example.org", (), 1, ("nothing checked",))
    assert parsed.format_value() == "mx.example.org 1; none (nothing checked)"


def test_method_named_none_is_not_the_none_form() -> None:
    parsed = parse_authentication_results("example.com; none=pass")
    assert parsed.results == (ResInfo("none", "pass"),)


def test_quoted_authserv_id_and_reason() -> None:
    parsed = parse_authentication_results('"mx example"; dkim=fail reason="bad \\"sig\\""')
    assert parsed.authserv_id == "mx example"
    assert parsed.results[0].reason == 'bad "sig"'
    assert parse_authentication_results(parsed.format_value()) == parsed


def test_pvalue_forms() -> None:
    parsed = parse_authentication_results(
        "example.com; spf=pass smtp.mailfrom=a.b+c@example.net; dkim=pass header.i=@example.org"
        ' header.b="ab/cd+ef"; auth=pass smtp.auth="john doe"@example.com'
    )
    assert parsed.results[0].get("smtp", "mailfrom") == "a.b+c@example.net"
    assert parsed.results[1].get("header", "i") == "@example.org"
    assert parsed.results[1].get("header", "b") == "ab/cd+ef"
    assert parsed.results[2].get("smtp", "auth") == '"john doe"@example.com'
    assert parse_authentication_results(parsed.format_value()) == parsed


def test_unquoted_slash_in_header_b_is_accepted() -> None:
    parsed = parse_authentication_results("x; dkim=pass header.b=Qgi/FoC0", strict=True)
    assert parsed.results[0].get("header", "b") == "Qgi/FoC0"
    assert 'header.b="Qgi/FoC0"' in parsed.format_value()  # written back grammatically


def test_srs_local_part_with_equals() -> None:
    value = "x; spf=pass smtp.mailfrom=SRS0=abcd=XY=example.com=user@fwd.example.net"
    parsed = parse_authentication_results(value, strict=True)
    assert (
        parsed.results[0].get("smtp", "mailfrom") == "SRS0=abcd=XY=example.com=user@fwd.example.net"
    )


def test_property_without_ptype_lenient_and_strict() -> None:
    value = "mail.example.org; x-tls=pass version=TLSv1.2 smtp.tlsversion=TLSv1.2"
    outcome = parse_with_warnings(value)
    assert outcome.value.results[0].properties == (Property("smtp", "tlsversion", "TLSv1.2"),)
    assert outcome.warnings == ("x-tls: property without ptype version=TLSv1.2 dropped",)
    with pytest.raises(ParseError, match="no ptype"):
        parse_authentication_results(value, strict=True)


def test_trailing_semicolon() -> None:
    assert (
        parse_authentication_results("x; spf=pass smtp.mailfrom=a@b.c;").results[0].method == "spf"
    )
    with pytest.raises(ParseError):
        parse_authentication_results("x; spf=pass smtp.mailfrom=a@b.c;", strict=True)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "example.com",
        "example.com;",
        "example.com; spf",
        "example.com; spf=",
        "example.com; spf=pass smtp.mailfrom",
        "example.com; spf=pass smtp.=x",
        "example.com; spf=pass smtp.mailfrom=",
        "example.com; spf=pass (unterminated",
        'example.com; spf=pass reason="open',
        "example.com; iprev=pass policy.iprev=2001:db8::1",
        "example.com; dkim=pass header.d=a..b@",
        "example.com; dkim=pass header.i=@",
        "example.com; dkim/x=pass",
        "example.com; spf=pass smtp.mailfrom=a=b",
        "example.com; spf=pass; ; dkim=pass",
        "example.com 1 2; none",
        "(only a comment)",
    ],
)
def test_malformed_values_raise_parse_error(value: str) -> None:
    with pytest.raises(ParseError):
        parse_authentication_results(value)


def test_parse_field_requires_the_field_name() -> None:
    assert parse_field("authentication-results: x; none").authserv_id == "x"
    with pytest.raises(ParseError):
        parse_field("Received: x; none")
    with pytest.raises(ParseError):
        parse_field("ARC-Authentication-Results: i=1; x; none")


def test_arc_authentication_results() -> None:
    instance, value = parse_arc_authentication_results(" i=2; lists.example.org; arc=pass")
    assert instance == 2
    assert value.results == (ResInfo("arc", "pass"),)
    with pytest.raises(ParseError):
        parse_arc_authentication_results("lists.example.org; arc=pass")


def test_error_message_says_where() -> None:
    with pytest.raises(ParseError) as info:
        parse_authentication_results("example.com; spf=pass smtp.mailfrom=a=b")
    assert info.value.position > 0
    assert "'='" in str(info.value)


# -- property-based ----------------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
keywords = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="\r\n\t"),
    max_size=20,
)
domains = st.lists(st.text(alphabet=_ALNUM, min_size=1, max_size=8), min_size=1, max_size=3).map(
    ".".join
)
pvalues = st.one_of(
    texts,
    domains,
    domains.map(lambda d: "@" + d),
    st.tuples(st.from_regex(r"[a-z0-9.+=_-]{1,10}", fullmatch=True), domains).map(
        lambda t: f"{t[0]}@{t[1]}"
    ),
)
properties = st.builds(
    Property, keywords, keywords, pvalues, st.lists(texts, max_size=2).map(tuple)
)
resinfos = st.builds(
    ResInfo,
    keywords,
    keywords,
    st.none() | texts,
    st.lists(properties, max_size=3).map(tuple),
    st.lists(texts, max_size=2).map(tuple),
    st.none() | st.integers(0, 99),
)
headers = st.builds(
    AuthenticationResults,
    st.one_of(domains, texts.filter(bool)),
    st.lists(resinfos, max_size=4).map(tuple),
    st.none() | st.integers(0, 9),
    st.lists(texts, max_size=2).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(headers)
def test_round_trip(value: AuthenticationResults) -> None:
    text = value.format_value()
    assert parse_authentication_results(text, strict=True) == value
    folded = value.format_field(width=40)
    assert parse_field(folded, strict=True) == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_authentication_results(text)


@settings(max_examples=150, deadline=None)
@given(headers, st.integers(0, 200), st.text(max_size=5))
def test_damaged_headers_never_crash(value: AuthenticationResults, cut: int, junk: str) -> None:
    text = value.format_value()
    damaged = text[:cut] + junk + text[cut:]
    with contextlib.suppress(ParseError):
        parse_authentication_results(damaged, strict=True)


def test_utf8_values() -> None:
    parsed = parse_authentication_results("mx; dmarc=pass header.from=bücher.example")
    assert parsed.results[0].get("header", "from") == "bücher.example"
    assert parse_authentication_results(parsed.format_value()) == parsed
