"""mailwarden.spfbuild: records from options, warnings at the limits, and properties."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.dns import StaticResolver
from mailwarden.spf.record import MechanismKind, Qualifier, parse_record
from mailwarden.spfbuild import build_record, count_lookups, own_lookups, split_strings


def test_the_issue_example() -> None:
    record, warnings = build_record(ip4=["1.2.3.4", "1.2.3.5"], a=["example.com"], all="fail")
    assert record == "v=spf1 ip4:1.2.3.4 ip4:1.2.3.5 a:example.com -all"
    assert warnings == []


def test_every_kind_in_order() -> None:
    record, warnings = build_record(
        include=["_spf.example.net"],
        mx=["", "example.org"],
        a=[""],
        ip6=["2001:db8::/32"],
        ip4=["192.0.2.0/24", "198.51.100.7/32"],
        all="softfail",
    )
    assert record == (
        "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 ip6:2001:db8::/32 a mx mx:example.org"
        " include:_spf.example.net ~all"
    )
    assert warnings == []
    assert own_lookups(record) == 4


@pytest.mark.parametrize(
    ("word", "term"), [("fail", "-all"), ("softfail", "~all"), ("neutral", "?all")]
)
def test_all_qualifiers(word: str, term: str) -> None:
    assert build_record(ip4=["192.0.2.1"], all=word)[0].endswith(" " + term)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ip4": ["300.1.1.1"]}, "not an IPv4 address"),
        ({"ip4": ["2001:db8::1"]}, "not an IPv4 address"),
        ({"ip6": ["192.0.2.1"]}, "not an IPv6 address"),
        ({"ip4": ["192.0.2.0/33"]}, "prefix length"),
        ({"ip4": ["192.0.2.0/024"]}, "prefix length"),
        ({"ip6": ["2001:db8::/129"]}, "prefix length"),
        ({"a": ["not a name"]}, "not a domain name"),
        ({"include": ["localhost"]}, "not a domain name"),
        ({"mx": ["exa mple.com"]}, "not a domain name"),
        ({"all": "pass"}, "choose fail, softfail or neutral"),
    ],
)
def test_bad_input(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_record(**options)  # type: ignore[arg-type]


def test_warns_over_ten_lookups() -> None:
    record, warnings = build_record(include=[f"s{n}.example.com" for n in range(11)])
    assert own_lookups(record) == 11
    assert any("11 DNS-querying terms" in w and "more than 10" in w for w in warnings)
    _, warnings = build_record(include=[f"s{n}.example.com" for n in range(10)])
    assert not any("DNS-querying" in w for w in warnings)


def test_warns_over_255_bytes_and_splits() -> None:
    record, warnings = build_record(ip6=[f"2001:db8:{n:x}::/48" for n in range(20)])
    size = len(record)
    assert size > 255
    assert any(f"{size} bytes" in w and "255" in w for w in warnings)
    strings = split_strings(record)
    assert all(len(s) <= 255 for s in strings)
    assert "".join(strings) == record
    record, warnings = build_record(ip6=[f"2001:db8:{n:x}::/48" for n in range(30)])
    assert any("512 bytes need TCP" in w for w in warnings)


def test_duplicates_host_bits_and_empty_records() -> None:
    record, warnings = build_record(ip4=["192.0.2.9/24", "192.0.2.9/24"], a=["Example.COM."])
    assert record == "v=spf1 ip4:192.0.2.9/24 a:example.com -all"
    assert "192.0.2.9/24 has host bits set: it covers 192.0.2.0/24" in warnings
    assert "duplicate terms dropped: ip4:192.0.2.9/24" in warnings
    record, warnings = build_record()
    assert record == "v=spf1 -all"
    assert any("sends no mail" in w for w in warnings)


async def test_count_lookups_follows_includes() -> None:
    dns = StaticResolver(
        {
            "_spf.example.net": {"TXT": "v=spf1 include:a.example.net include:b.example.net -all"},
            "a.example.net": {"TXT": "v=spf1 a:h.example.net mx -all"},
            "b.example.net": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
            "h.example.net": {"A": "192.0.2.1"},
        }
    )
    record, _ = build_record(include=["_spf.example.net"], a=["h.example.net"])
    lookups, problems = await count_lookups(dns, record)
    assert lookups == 2 + 2 + 2  # own a + include, the include's 2 includes, a's a + mx
    assert problems == []
    _, problems = await count_lookups(dns, "v=spf1 include:missing.example.net -all")
    assert any("no SPF record" in p for p in problems)


_v4 = st.builds(
    lambda ip, n: f"{ip}/{n}" if n < 32 else str(ip),
    st.ip_addresses(v=4),
    st.integers(0, 32),
)
_v6 = st.builds(
    lambda ip, n: f"{ip}/{n}" if n < 128 else str(ip),
    st.ip_addresses(v=6),
    st.integers(0, 128),
)
_name = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]\.(com|net|example)", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_v4, max_size=5),
    st.lists(_v6, max_size=5),
    st.lists(_name, max_size=3),
    st.lists(st.one_of(st.just(""), _name), max_size=3),
    st.lists(_name, max_size=4),
    st.sampled_from(["fail", "softfail", "neutral"]),
)
def test_built_records_parse_back(
    ip4: list[str], ip6: list[str], a: list[str], mx: list[str], include: list[str], all_: str
) -> None:
    record, _ = build_record(ip4=ip4, ip6=ip6, a=a, mx=mx, include=include, all=all_)
    parsed = parse_record(record)
    kinds = [m.kind for m in parsed.mechanisms]
    assert kinds[-1] is MechanismKind.ALL
    assert (
        parsed.mechanisms[-1].qualifier
        is {
            "fail": Qualifier.FAIL,
            "softfail": Qualifier.SOFTFAIL,
            "neutral": Qualifier.NEUTRAL,
        }[all_]
    )
    networks = [m.network for m in parsed.mechanisms if m.network is not None]
    wanted = [ipaddress.ip_network(n, strict=False) for n in dict.fromkeys([*ip4, *ip6])]
    assert networks == wanted
    assert len([k for k in kinds if k is MechanismKind.INCLUDE]) == len(set(include))
    assert all(m.qualifier is Qualifier.PASS for m in parsed.mechanisms[:-1])
