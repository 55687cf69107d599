"""Received field parsing: real-world formats, partial hops, errors, and properties."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.received import ParseError, ReceivedHop, TLSInfo, parse_received

POSTFIX = (
    "from mail.example.org (mail.example.org [192.0.2.1])\r\n"
    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
    "\t key-exchange X25519 server-signature RSA-PSS (2048 bits))\r\n"
    "\t(No client certificate requested)\r\n"
    "\tby mx.example.net (Postfix) with ESMTPS id 4ABC123\r\n"
    "\tfor <bob@example.net>; Mon, 23 Nov 2026 10:00:05 +0000 (UTC)"
)
POSTFIX_UNKNOWN = (
    "from helo.example (unknown [198.51.100.7]) by mx.example.net (Postfix) with ESMTP"
    " id 4XYZ; Mon, 23 Nov 2026 10:00:05 +0100"
)
EXIM = (
    "from [192.0.2.1] (helo=mail.example.org) by mx.example.net with esmtps (TLS1.3)"
    " tls TLS_AES_256_GCM_SHA384 (Exim 4.96) (envelope-from <a@example.org>)"
    " id 1abcDE-000123-AB for bob@example.net; Mon, 23 Nov 2026 10:00:05 +0000"
)
EXIM_REVERSE = (
    "from host.rev.example ([192.0.2.1]:54321 helo=x.example) by mx.example.net"
    " with esmtp (Exim 4.96) id 1abc; Mon, 23 Nov 2026 10:00:05 +0000"
)
EXIM_OLD_TLS = (
    "from a.example ([198.51.100.2]) by b.example with esmtps"
    " (TLS1.2:ECDHE-RSA-AES256-GCM-SHA384:256) (Exim 4.92) id x; Mon, 23 Nov 2026 10:00:05 +0000"
)
SENDMAIL = (
    "from mail.example.org (mail.example.org [IPv6:2001:db8::25]) by mx.example.net"
    " (8.15.2/8.15.2) with ESMTPS id 0AB1234 (version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384"
    " bits=256 verify=NOT) for <bob@example.net>; Mon, 23 Nov 2026 10:00:05 +0000"
)
SENDMAIL_FORGED = (
    "from helo.example (rev.example [2001:db8::25] (may be forged)) by mx.example.net"
    " (8.15.2/8.15.2) with ESMTP id 1; Mon, 23 Nov 2026 10:00:05 +0000"
)
QMAIL = (
    "from unknown (HELO mail.example.org) (192.0.2.1) by mx.example.net with SMTP;"
    " 23 Nov 2026 10:00:05 -0000"
)
GMAIL_INTERNAL = (
    "by 2002:a05:6520:2e4c:b0:2a1:c3e5:9c1f with SMTP id y12csp123456lkb;"
    "        Mon, 23 Nov 2026 02:00:07 -0800 (PST)"
)
GMAIL = (
    "from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41]) by mx.google.com"
    " with SMTPS id abc.123 for <bob@example.com> (Google Transport Security);"
    " Mon, 23 Nov 2026 02:00:07 -0800 (PST)"
)
MICROSOFT = (
    "from DB5PEPF00014B89.eurprd02.prod.outlook.com (2603:10a6:10:1d::2) by"
    " AS8PR02MB9999.eurprd02.prod.outlook.com (2603:10a6:20b:5a0::15) with Microsoft SMTP"
    " Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7452.22;"
    " Mon, 23 Nov 2026 10:00:05 +0000"
)
MICROSOFT_HTTPS = (
    "from AM0PR02MB1234.eurprd02.prod.outlook.com ([fe80::1234:5678:9abc:def0]) by"
    " AM0PR02MB1234.eurprd02.prod.outlook.com ([fe80::1234:5678:9abc:def0%4]) with"
    " mapi id 15.20.7452.022; Mon, 23 Nov 2026 10:00:05 +0000"
)

UTC = datetime.UTC


def at(hour: int, minute: int, second: int, offset_hours: int = 0) -> datetime.datetime:
    tz = datetime.timezone(datetime.timedelta(hours=offset_hours))
    return datetime.datetime(2026, 11, 23, hour, minute, second, tzinfo=tz)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            POSTFIX,
            dict(
                from_name="mail.example.org",
                helo="mail.example.org",
                reverse_name="mail.example.org",
                ip="192.0.2.1",
                by="mx.example.net",
                by_comment="Postfix",
                protocol="ESMTPS",
                tls=TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
                id="4ABC123",
                for_address="bob@example.net",
                date=at(10, 0, 5),
            ),
        ),
        (
            POSTFIX_UNKNOWN,
            dict(helo="helo.example", reverse_name="", ip="198.51.100.7", tls=None),
        ),
        (
            EXIM,
            dict(
                from_name="[192.0.2.1]",
                helo="mail.example.org",
                reverse_name="",
                ip="192.0.2.1",
                protocol="esmtps",
                tls=TLSInfo("TLS1.3", "TLS_AES_256_GCM_SHA384"),
                id="1abcDE-000123-AB",
                for_address="bob@example.net",
            ),
        ),
        (
            EXIM_REVERSE,
            dict(from_name="host.rev.example", helo="x.example", ip="192.0.2.1", tls=None),
        ),
        (EXIM_OLD_TLS, dict(tls=TLSInfo("TLS1.2", "ECDHE-RSA-AES256-GCM-SHA384"))),
        (
            SENDMAIL,
            dict(
                ip="2001:db8::25",
                reverse_name="mail.example.org",
                by_comment="8.15.2/8.15.2",
                tls=TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
            ),
        ),
        (
            SENDMAIL_FORGED,
            dict(helo="helo.example", reverse_name="rev.example", ip="2001:db8::25"),
        ),
        (
            QMAIL,
            dict(
                from_name="unknown",
                helo="mail.example.org",
                reverse_name="",
                ip="192.0.2.1",
                protocol="SMTP",
                date=at(10, 0, 5),
            ),
        ),
        (
            GMAIL_INTERNAL,
            dict(
                from_name="",
                ip=None,
                by="2002:a05:6520:2e4c:b0:2a1:c3e5:9c1f",
                protocol="SMTP",
                id="y12csp123456lkb",
                date=at(2, 0, 7, -8),
            ),
        ),
        (
            GMAIL,
            dict(
                reverse_name="mail-sor-f41.google.com",
                ip="209.85.220.41",
                by="mx.google.com",
                protocol="SMTPS",
                tls=TLSInfo(None, None),
                for_address="bob@example.com",
            ),
        ),
        (
            MICROSOFT,
            dict(
                from_name="db5pepf00014b89.eurprd02.prod.outlook.com",
                ip="2603:10a6:10:1d::2",
                by="as8pr02mb9999.eurprd02.prod.outlook.com",
                protocol="Microsoft SMTP Server",
                tls=TLSInfo("TLS1_2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
                id="15.20.7452.22",
            ),
        ),
        (MICROSOFT_HTTPS, dict(ip="fe80::1234:5678:9abc:def0", protocol="mapi")),
    ],
)
def test_real_world_formats(text: str, expected: dict[str, object]) -> None:
    hop = parse_received(text)
    assert hop.problems == ()
    for name, value in expected.items():
        actual = getattr(hop, name)
        if name == "ip":
            actual = str(actual) if actual is not None else None
        assert actual == value, name


def test_date_keeps_its_offset() -> None:
    hop = parse_received(GMAIL)
    assert hop.date is not None
    assert hop.date.utcoffset() == datetime.timedelta(hours=-8)
    assert hop.timestamp == at(10, 0, 7).timestamp()
    assert hop.date_text == "Mon, 23 Nov 2026 02:00:07 -0800 (PST)"


def test_ipv4_mapped_address_is_read_as_ipv4() -> None:
    hop = parse_received("from x (x [IPv6:::ffff:192.0.2.5]) by y; Mon, 23 Nov 2026 10:00:05 +0000")
    assert hop.ip == ipaddress.IPv4Address("192.0.2.5")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("from a.example by b.example with SMTP", "no date"),
        ("from a.example by b.example; yesterday-ish", "unreadable date"),
        ("from a.example (unclosed by b.example; Mon, 23 Nov 2026 10:00:05 +0000", "unclosed"),
        ("from a.example with SMTP; Mon, 23 Nov 2026 10:00:05 +0000", "no by clause"),
        ("junk words by b.example; Mon, 23 Nov 2026 10:00:05 +0000", "unrecognised text"),
        ("from a by b by c; Mon, 23 Nov 2026 10:00:05 +0000", "given twice"),
    ],
)
def test_partial_hops_say_what_is_missing(text: str, problem: str) -> None:
    hop = parse_received(text)
    assert hop.partial
    assert any(problem in p for p in hop.problems), hop.problems


def test_partial_hop_keeps_what_it_could_read() -> None:
    hop = parse_received("from a.example (a.example [192.0.2.9]) by b.example with SMTP")
    assert (hop.helo, str(hop.ip), hop.by, hop.date) == (
        "a.example",
        "192.0.2.9",
        "b.example",
        None,
    )


@pytest.mark.parametrize("text", ["", "   ", "garbage", "(only a comment)", ";", "a b c d"])
def test_nothing_recognisable_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_received(text)


def test_bytes_are_accepted() -> None:
    hop = parse_received(POSTFIX.encode())
    assert hop.by == "mx.example.net"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_never_crashes_on_arbitrary_text(text: str) -> None:
    try:
        hop = parse_received(text)
    except ParseError:
        return
    assert isinstance(hop, ReceivedHop)
    hop.format()  # a partial hop can always be written back


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "from",
                "by",
                "with",
                "id",
                "for",
                "via",
                "(",
                ")",
                "[",
                "]",
                "<",
                ">",
                ";",
                "x.y",
                "[192.0.2.1]",
                "helo=a",
                "TLSv1.3",
                "cipher=ABCDEF",
                " ",
                "\r\n\t",
                "Mon, 23 Nov 2026",
            ]
        ),
        max_size=30,
    )
)
def test_never_crashes_on_received_like_tokens(parts: list[str]) -> None:
    with contextlib.suppress(ParseError):
        parse_received(" ".join(parts))


_label = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
_host = st.builds(lambda labels: ".".join(labels), st.lists(_label, min_size=2, max_size=4))
_ip = st.one_of(
    st.ip_addresses(v=4).filter(lambda a: not a.is_loopback),
    st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None and a.scope_id is None),
)
_date = st.datetimes(
    min_value=datetime.datetime(1990, 1, 1),
    max_value=datetime.datetime(2090, 1, 1),
    timezones=st.sampled_from([UTC, datetime.timezone(datetime.timedelta(hours=-8))]),
).map(lambda d: d.replace(microsecond=0))


@st.composite
def hops(draw: st.DrawFn) -> ReceivedHop:
    from_name = draw(_host)
    ip = draw(st.none() | _ip)
    reverse = draw(_host) if ip is not None and draw(st.booleans()) else ""
    protocol = draw(st.sampled_from(["SMTP", "ESMTP", "ESMTPS", "ESMTPSA", "LMTP"]))
    tls = None
    if protocol in ("ESMTPS", "ESMTPSA"):
        tls = draw(
            st.sampled_from(
                [TLSInfo(), TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384"), TLSInfo("TLSv1.2", None)]
            )
        )
    return ReceivedHop(
        from_name=from_name,
        helo=draw(st.sampled_from([from_name, "other.example"])),
        reverse_name=reverse,
        ip=ip,
        by=draw(_host),
        protocol=protocol,
        tls=tls,
        id=draw(st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)),
        for_address=draw(st.sampled_from(["", "bob@example.net"])),
        date=draw(_date),
    )


@settings(max_examples=200, deadline=None)
@given(hops())
def test_format_then_parse_round_trips(hop: ReceivedHop) -> None:
    parsed = parse_received(hop.format())
    assert parsed.problems == ()
    for name in (
        "from_name",
        "helo",
        "reverse_name",
        "ip",
        "by",
        "protocol",
        "tls",
        "id",
        "for_address",
        "date",
    ):
        assert getattr(parsed, name) == getattr(hop, name), name
    assert parse_received(parsed.format()).format() == hop.format()
