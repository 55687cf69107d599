"""The pure greylisting rules and key parsers."""

from __future__ import annotations

import ipaddress
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.greylist import (
    AllowEntry,
    Entry,
    GreylistAction,
    GreylistConfig,
    GreylistStage,
    TripletKey,
    advance,
    allow_targets,
    check_allow_entry,
    client_network,
    decide,
    is_valid_time,
    normalize_recipient,
    normalize_sender,
    parse_allow_target,
    stored_count,
    stored_time,
)

KEY = TripletKey("net:192.0.2.0/24", "a@example.com", "b@example.net")
CONFIG = GreylistConfig()


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("<>", "<>"),
        ("", "<>"),
        ("<Alice@Example.COM.>", "alice@example.com"),
        ("prvs=0123abcd=bounce@lists.example", "bounce@lists.example"),
        ("msprvs1=17abcd=user@example.com", "user@example.com"),
        ("btv1==0ab==user@example.com", "user@example.com"),
        ("user+tag@example.com", "user@example.com"),
        ("+weird@example.com", "+weird@example.com"),
        ("bounces-12345-678@example.com", "bounces-#-#@example.com"),
        ("postmaster", "postmaster"),
    ],
)
def test_normalize_sender(raw: str, normal: str) -> None:
    assert normalize_sender(raw) == normal


def test_defaults_match_the_issue() -> None:
    assert CONFIG.min_delay == 300
    assert CONFIG.retry_window == 86_400
    assert CONFIG.pass_ttl == 36 * 86_400
    assert CONFIG.auto_allow_after == 5
    assert (CONFIG.ipv4_prefix, CONFIG.ipv6_prefix) == (24, 64)
    assert CONFIG.stage is GreylistStage.DATA
    assert normalize_recipient("<Bob@Example.NET>") == "bob@example.net"


def test_client_networks() -> None:
    assert client_network(ipaddress.ip_address("192.0.2.200"), CONFIG) == "net:192.0.2.0/24"
    wide = GreylistConfig(ipv4_prefix=16, ipv6_prefix=48)
    assert client_network(ipaddress.ip_address("2001:db8:1:2::1"), wide) == "net:2001:db8:1::/48"


def test_allow_targets_cover_every_prefix_and_parent_domain() -> None:
    targets = allow_targets(ipaddress.ip_address("192.0.2.9"), "a@mx.example.com")
    assert targets[0] == "net:192.0.2.9/32"
    assert "net:192.0.2.0/24" in targets
    assert "net:0.0.0.0/0" in targets
    assert targets[-4:] == [
        "domain:mx.example.com",
        "domain:example.com",
        "domain:com",
        "sender:a@mx.example.com",
    ]
    v6 = allow_targets(ipaddress.ip_address("2001:db8::1"), "<>")
    assert len(v6) == 33  # IPv6 allow entries sit on nibble boundaries
    assert "net:2001:db8::/32" in v6
    assert v6[0] == "net:2001:db8::1/128"


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("192.0.2.1", "net:192.0.2.1/32"),
        ("192.0.2.7/24", "net:192.0.2.0/24"),
        ("2001:DB8::/48", "net:2001:db8::/48"),
        ("net:198.51.100.0/28", "net:198.51.100.0/28"),
        ("Example.COM", "domain:example.com"),
        ("domain:mail.example.com", "domain:mail.example.com"),
        ("News+x@Letters.example", "sender:news@letters.example"),
    ],
)
def test_parse_allow_target(text: str, target: str) -> None:
    assert parse_allow_target(text) == target


@pytest.mark.parametrize(
    "text", ["", "net:", "localhost", "not a domain", "@example.com", "a@b", "2001:db8::/63"]
)
def test_parse_allow_target_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_allow_target(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("fe80::1%eth0", "scoped IPv6 address"),  # used to be stored as net:fe80::1%eth0/128
        ("net:fe80::%eth0/64", "scoped IPv6 address"),
        ("999.1.1.1", "an IPv4 address is four numbers"),  # used to be domain:999.1.1.1
        ("999.1.1.0/24", "an IPv4 address is four numbers"),
        ("1.2.3", "an IPv4 address is four numbers"),
        ("domain:10.0.0.999", "an IPv4 address is four numbers"),  # never a domain
        ("a@999.1.1.1", "not a valid e-mail address"),
        ("192.0.2.0/33", "invalid network"),
        ("192.0.2.1\x00", "control characters"),
        ("example.com\r\nx", "control characters"),
    ],
)
def test_parse_allow_target_says_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_allow_target(text)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (0.0, True),
        (1_700_000_000.0, True),
        (253_402_300_799.0, True),  # 9999-12-31T23:59:59Z
        (253_402_300_800.0, False),
        (-62_135_596_801.0, False),
        (math.inf, False),
        (-math.inf, False),
        (math.nan, False),
        ("1700000000", False),
        (True, False),
        (None, False),
    ],
)
def test_is_valid_time(value: object, valid: bool) -> None:
    assert is_valid_time(value) is valid


@pytest.mark.parametrize(
    "entry",
    [
        AllowEntry("net:192.0.2.1/32", 1.0, math.inf),
        AllowEntry("net:192.0.2.1/32", 1.0, math.nan),
        AllowEntry("net:192.0.2.1/32", 1.0, 1e300),
        AllowEntry("net:192.0.2.1/32", math.nan, None),
    ],
)
def test_check_allow_entry_refuses_times_that_are_not_times(entry: AllowEntry) -> None:
    with pytest.raises(ValueError, match="is not a time"):
        check_allow_entry(entry)


@pytest.mark.parametrize(
    ("value", "time", "count"),
    [
        (12, 12.0, 12),
        (1.5, 1.5, 1),
        ("3", 3.0, 3),
        (b"4", 4.0, 4),
        ("soon", math.nan, -1),
        (None, math.nan, -1),
        (math.inf, math.inf, -1),
        ("9" * 400, math.inf, int("9" * 400)),
        ([1], math.nan, -1),
    ],
)
def test_stored_values_never_raise(value: object, time: float, count: int) -> None:
    got = stored_time(value)
    assert got == time or (math.isnan(got) and math.isnan(time))
    assert stored_count(value) == count


def test_advance_and_decide_table() -> None:
    t0 = 1000.0
    first = advance(None, KEY, t0, CONFIG)
    d = decide(None, first, t0, CONFIG)
    assert (d.action, d.retry_after) == (GreylistAction.DEFER, 300)
    early = advance(first, KEY, t0 + 299.5, CONFIG)
    assert decide(first, early, t0 + 299.5, CONFIG).retry_after == 1  # rounded up, never 0
    ok = advance(early, KEY, t0 + 300, CONFIG)  # exactly the minimum delay passes
    assert decide(early, ok, t0 + 300, CONFIG).action is GreylistAction.PASS
    assert ok.expires_at == t0 + 300 + CONFIG.pass_ttl
    known = advance(ok, KEY, t0 + 5000, CONFIG)
    assert decide(ok, known, t0 + 5000, CONFIG).reason.startswith("known triplet")
    stale = Entry(KEY, t0, t0, 1, None, t0 + 10)
    assert advance(stale, KEY, t0 + 11, CONFIG).attempts == 1  # expired: a new first attempt


def test_reply_text_is_configurable() -> None:
    config = GreylistConfig(reply_text="Come back in {delay}s")
    entry = advance(None, KEY, 0.0, config)
    assert decide(None, entry, 0.0, config).reply == "451 4.7.1 Come back in 300s"


@given(st.text(max_size=200))
def test_normalize_sender_never_raises_and_is_idempotent(text: str) -> None:
    once = normalize_sender(text)
    assert normalize_sender(once) == once or "@" not in once


@given(st.emails())
def test_normalize_sender_keeps_the_domain(address: str) -> None:
    normal = normalize_sender(address)
    assert normal.rpartition("@")[2] == address.rpartition("@")[2].lower().rstrip(".")
    assert normalize_sender(normal) == normal


@given(st.text(max_size=100))
def test_parse_allow_target_never_crashes(text: str) -> None:
    try:
        target = parse_allow_target(text)
    except ValueError as exc:
        assert str(exc)  # noqa: PT017 - the message is the contract
    else:
        assert target.split(":", 1)[0] in {"net", "domain", "sender"}
        assert parse_allow_target(target) == target


@given(st.ip_addresses(), st.integers(0, 128))
def test_network_targets_round_trip(address: ipaddress.IPv4Address, length: int) -> None:
    length = min(length, address.max_prefixlen)
    network = ipaddress.ip_network((address, length), strict=False)
    if network.version == 6 and length % 4:
        with pytest.raises(ValueError, match="multiple of 4"):
            parse_allow_target(str(network))
        return
    target = parse_allow_target(str(network))
    assert target == f"net:{network}"
    assert target in allow_targets(address, "<>")
