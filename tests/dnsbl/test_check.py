"""DNS list queries over static zones: codes, bitmasks, TXT, IPv6 nibbles, errors, health."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import pytest

from mailwarden.dns import Answer, Failure, RdType, Resolver, StaticResolver
from mailwarden.dnsbl import (
    DEFAULT_LISTS,
    DNSList,
    DNSListChecker,
    DNSListReport,
    ListKind,
    ListReason,
    ListResult,
    ListStatus,
    ListType,
    parse_return_codes,
    query_name,
)

LISTS = {lst.name: lst for lst in DEFAULT_LISTS}
V6 = ipaddress.IPv6Address("2001:db8::1")
V6_NIBBLES = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rfc5782_tests(zone: str, *, ipv6: bool = True) -> dict[str, dict[str, object]]:
    """The test entries a well-behaved IP list publishes (RFC 5782 §5)."""
    records: dict[str, dict[str, object]] = {f"2.0.0.127.{zone}": {"A": "127.0.0.2"}}
    if ipv6:
        nibbles = ipaddress.IPv6Address("::ffff:7f00:2").reverse_pointer.removesuffix(".ip6.arpa")
        records[f"{nibbles}.{zone}"] = {"A": "127.0.0.2"}
    return records


def zone() -> StaticResolver:
    z: dict[str, dict[str, object]] = {
        # zen: SBL + XBL for 192.0.2.1, PBL for 192.0.2.2, error answer for 192.0.2.3
        "1.2.0.192.zen.spamhaus.org": {
            "A": ["127.0.0.2", "127.0.0.4"],
            "TXT": "https://check.spamhaus.org/listed/?searchterm=192.0.2.1",
        },
        "2.2.0.192.zen.spamhaus.org": {"A": "127.0.0.10"},
        "3.2.0.192.zen.spamhaus.org": {"A": "127.255.255.254"},
        "4.2.0.192.zen.spamhaus.org": {"A": "127.0.0.77"},  # unknown code: still a listing
        "5.2.0.192.zen.spamhaus.org": {"A": "10.1.2.3"},  # hijacked resolver
        f"{V6_NIBBLES}.zen.spamhaus.org": {"A": "127.0.0.3"},
        "1.2.0.192.bl.spamcop.net": {"A": "127.0.0.2", "TXT": "Blocked - see spamcop"},
        # dnswl: 192.0.2.10 trust high, category 5; 192.0.2.11 blocked query
        "10.2.0.192.list.dnswl.org": {"A": "127.0.5.3"},
        "11.2.0.192.list.dnswl.org": {"A": "127.0.0.255"},
        f"{V6_NIBBLES}.list.dnswl.org": {"A": "127.0.15.2"},
        # domain lists
        "spam.example.dbl.spamhaus.org": {"A": "127.0.1.2", "TXT": "dbl says spam"},
        "phish.example.dbl.spamhaus.org": {"A": ["127.0.1.4", "127.0.1.2"]},
        "abused.example.dbl.spamhaus.org": {"A": "127.0.1.104"},
        "phish.example.multi.surbl.org": {"A": "127.0.0.88"},  # 64 + 16 + 8
        # health: test entries
        "dbltest.com.dbl.spamhaus.org": {"A": "127.0.1.2"},
        "test.surbl.org.multi.surbl.org": {"A": "127.0.0.248"},
    }
    for lst in DEFAULT_LISTS:
        if lst.kind is ListKind.IP:
            z.update(rfc5782_tests(lst.zone, ipv6=lst.ipv6))
    return StaticResolver(z)  # type: ignore[arg-type]


def checker(resolver: Resolver | None = None, clock: Clock | None = None) -> DNSListChecker:
    return DNSListChecker(resolver or zone(), DEFAULT_LISTS, clock or Clock())


def by_list(report: DNSListReport) -> dict[str, ListResult]:
    return {r.list: r for r in report.results}


def test_query_names() -> None:
    assert query_name(ipaddress.IPv4Address("192.0.2.1"), "zen.example") == "1.2.0.192.zen.example"
    assert query_name(V6, "bl.example") == f"{V6_NIBBLES}.bl.example"
    assert len(query_name(V6, "x").split(".")) == 33  # RFC 5782 §2.4: 32 nibbles
    assert query_name("example.com", "dbl.example") == "example.com.dbl.example"


async def test_multiple_codes_map_to_symbols_with_txt_reason() -> None:
    report = await checker().check_ip("192.0.2.1")
    results = {r.list: r for r in report.results}
    zen = results["zen"]
    assert zen.status is ListStatus.LISTED
    assert zen.reason_code is ListReason.LISTED
    assert [s.name for s in zen.symbols] == ["RBL_ZEN_SBL", "RBL_ZEN_XBL"]
    assert [s.score for s in zen.symbols] == [4.0, 5.0]  # as the definition weighs them
    assert zen.to_dict()["symbols"] == ["RBL_ZEN_SBL", "RBL_ZEN_XBL"]  # scores: the policy's
    assert zen.reason == "https://check.spamhaus.org/listed/?searchterm=192.0.2.1"
    assert all(zen.reason in s.detail for s in zen.symbols)
    assert results["spamcop"].symbols[0].name == "RBL_SPAMCOP"
    assert results["spamcop"].reason == "Blocked - see spamcop"
    assert results["barracuda"].status is ListStatus.NOT_LISTED
    assert results["barracuda"].reason_code is ListReason.NOT_LISTED
    assert results["dnswl"].status is ListStatus.NOT_LISTED
    assert {s.name for s in report.symbols} == {"RBL_ZEN_SBL", "RBL_ZEN_XBL", "RBL_SPAMCOP"}
    assert [r.list for r in report.listed] == ["zen", "spamcop"]
    assert report.allowed == ()
    assert {r.list for r in report.results} == {"zen", "spamcop", "barracuda", "psbl", "dnswl"}


async def test_pbl_and_unknown_codes() -> None:
    c = checker()
    pbl = by_list(await c.check_ip("192.0.2.2"))["zen"]
    assert [s.name for s in pbl.symbols] == ["RBL_ZEN_PBL"]
    # No TXT published: the reason is the code's description.
    assert "PBL" in pbl.reason
    unknown = by_list(await c.check_ip("192.0.2.4"))["zen"]
    assert unknown.status is ListStatus.LISTED
    assert [(s.name, s.score) for s in unknown.symbols] == [("RBL_ZEN", 3.0)]


async def test_dnswl_trust_levels_and_ipv6_nibbles() -> None:
    c = checker()
    report = await c.check_ip("192.0.2.10")
    assert [s.name for s in report.symbols] == ["DNSWL_HI"]
    assert report.symbols[0].score < 0
    assert [r.list for r in report.allowed] == ["dnswl"]
    assert report.listed == ()
    v6 = await c.check_ip(V6)
    assert {s.name for s in v6.symbols} == {"RBL_ZEN_CSS", "DNSWL_MED"}
    skipped = {r.list for r in v6.results if r.status is ListStatus.SKIPPED}
    assert skipped == {"spamcop", "barracuda", "psbl"}  # IPv4-only lists are not queried


async def test_ipv4_mapped_address_is_queried_as_ipv4() -> None:
    report = await checker().check_ip("::ffff:192.0.2.1")
    assert report.subject == "192.0.2.1"
    assert "RBL_ZEN_SBL" in {s.name for s in report.symbols}


async def test_error_answers_are_not_listings_and_distrust_the_list(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    r = zone()
    c = checker(r, clock)
    with caplog.at_level(logging.WARNING, logger="mailwarden.dnsbl"):
        report = await c.check_ip("192.0.2.3")
    zen = by_list(report)["zen"]
    assert zen.status is ListStatus.ERROR
    assert zen.reason_code is ListReason.ERROR_ANSWER
    assert zen.symbols == ()
    assert "public or unattributable resolver" in zen.reason
    assert report.symbols == ()
    assert any("zen" in w for w in report.warnings)
    assert "zen.spamhaus.org" in caplog.text
    assert c.health["zen"].errors == 1
    assert any("answers with errors" in w for w in c.warnings())

    # While distrusted, zen is not even queried; its real listings are not trusted either.
    before = len(r.queries)
    later = await c.check_ip("192.0.2.1")
    assert by_list(later)["zen"].status is ListStatus.SKIPPED
    assert by_list(later)["zen"].reason_code is ListReason.DISTRUSTED
    assert not any(q[0].endswith("zen.spamhaus.org") for q in r.queries[before:])
    assert "RBL_ZEN_SBL" not in {s.name for s in later.symbols}

    clock.now += c.error_hold + 1
    again = await c.check_ip("192.0.2.1")
    assert "RBL_ZEN_SBL" in {s.name for s in again.symbols}
    assert c.warnings() == []


async def test_list_specific_error_code_and_foreign_answer() -> None:
    c = checker()
    dnswl = by_list(await c.check_ip("192.0.2.11"))["dnswl"]
    assert dnswl.status is ListStatus.ERROR
    assert "volume above the free limit" in dnswl.reason
    hijacked = by_list(await c.check_ip("192.0.2.5"))["zen"]
    assert hijacked.status is ListStatus.ERROR
    assert "outside 127.0.0.0/8" in hijacked.reason


async def test_temporary_failure_is_reported_not_listed() -> None:
    r = zone()
    r.fail("1.2.0.192.bl.spamcop.net", "A", Failure.SERVFAIL)
    report = await checker(r).check_ip("192.0.2.1")
    spamcop = by_list(report)["spamcop"]
    assert spamcop.status is ListStatus.TEMPERROR
    assert spamcop.reason_code is ListReason.DNS_ERROR
    assert any(w.startswith("spamcop:") for w in report.warnings)


async def test_rhsbl_codes_bitmask_and_identities() -> None:
    c = checker()
    spam = await c.check_domain("SPAM.example.")
    assert spam.subject == "spam.example"
    assert [(s.name, s.detail) for s in spam.symbols] == [
        ("RHSBL_DBL_SPAM", "Spamhaus DBL: low-reputation domain: dbl says spam")
    ]
    phish = await c.check_domain("phish.example")
    names = [s.name for s in phish.symbols]
    assert names == ["RHSBL_DBL_SPAM", "RHSBL_DBL_PHISH", "RHSBL_SURBL_PH", "RHSBL_SURBL_MW",
                     "RHSBL_SURBL_ABUSE"]  # fmt: skip
    abused = await c.check_domain("abused.example")
    assert [s.name for s in abused.symbols] == ["RHSBL_DBL_ABUSED"]
    clean = await c.check_domain("clean.example")
    assert clean.symbols == ()
    assert {r.status for r in clean.results} == {ListStatus.NOT_LISTED}

    r = zone()
    c = checker(r)
    reports = await c.check_domains(
        {"helo": "spam.example", "mail_from": "Spam.Example", "from": "clean.example", "dkim": ""}
    )
    assert set(reports) == {"helo", "mail_from", "from"}
    assert reports["helo"] is reports["mail_from"]
    dbl_queries = [q for q in r.queries if q == ("spam.example.dbl.spamhaus.org", RdType.A)]
    assert len(dbl_queries) == 1


async def test_invalid_domain_is_skipped_not_raised() -> None:
    report = await checker().check_domain("not a domain")
    assert {r.status for r in report.results} == {ListStatus.SKIPPED}
    assert {r.reason_code for r in report.results} == {ListReason.INVALID_DOMAIN}
    assert report.symbols == ()
    single = await checker().check_domain("localhost")
    assert {r.status for r in single.results} == {ListStatus.SKIPPED}


async def test_health_check_passes_for_well_behaved_lists() -> None:
    c = checker()
    health = await c.health_check()
    assert {name: h.healthy for name, h in health.items()} == dict.fromkeys(LISTS, True)
    assert c.warnings() == []


async def test_health_check_marks_misbehaving_lists_unhealthy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = zone()
    # spamcop: answers for everything (wildcard); psbl: test entry missing;
    # barracuda: refuses us; dnswl: times out.
    r.add("1.0.0.127.bl.spamcop.net", "A", "127.0.0.2")
    r.add("2.0.0.127.b.barracudacentral.org", "A", "127.255.255.254")
    r.fail("2.0.0.127.list.dnswl.org")
    c = checker(_Overlay(r, drop_suffix="psbl.surriel.com"))
    with caplog.at_level(logging.WARNING, logger="mailwarden.dnsbl"):
        health = await c.health_check()
    unhealthy = {name for name, h in health.items() if not h.healthy}
    assert unhealthy == {"spamcop", "barracuda", "dnswl", "psbl"}
    assert "answers for everything" in health["spamcop"].reason
    assert "127.255.255.254" in health["barracuda"].reason
    assert "no answer" in health["dnswl"].reason
    assert "not listed" in health["psbl"].reason
    assert len(c.warnings()) == 4
    assert "failed its health check" in caplog.text

    report = await c.check_ip("192.0.2.1")
    spamcop = by_list(report)["spamcop"]
    assert spamcop.status is ListStatus.SKIPPED
    assert spamcop.reason_code is ListReason.UNHEALTHY
    assert spamcop.reason.startswith("unhealthy")
    assert [s.name for s in report.symbols] == ["RBL_ZEN_SBL", "RBL_ZEN_XBL"]


async def test_health_check_recovers_and_runs_periodically() -> None:
    clock = Clock()
    r = zone()
    r.fail("2.0.0.127.bl.spamcop.net")
    c = DNSListChecker(r, [LISTS["spamcop"]], clock, health_interval=100)
    assert await c.maybe_health_check()
    assert not c.health["spamcop"].healthy
    assert not await c.maybe_health_check()  # not due yet
    c.resolver = zone()  # the list works again
    clock.now += 101
    assert await c.maybe_health_check()
    assert c.health["spamcop"].healthy


async def test_health_loop_stops() -> None:
    ran = asyncio.Event()

    class Watched(DNSListChecker):
        async def maybe_health_check(self) -> bool:
            done = await super().maybe_health_check()
            ran.set()
            return done

    c = Watched(zone(), [LISTS["spamcop"]], Clock(), health_interval=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(c.health_loop(stop))
    await asyncio.wait_for(ran.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert c.health["spamcop"].healthy


async def test_domain_list_health_uses_test_and_invalid() -> None:
    lst = DNSList(
        "ex", "rhsbl.example", kind=ListKind.DOMAIN, codes=parse_return_codes("127.0.0.2=EX")
    )
    r = StaticResolver({"test.rhsbl.example": {"A": "127.0.0.2"}})
    c = DNSListChecker(r, [lst], Clock())
    assert (await c.health_check())["ex"].healthy
    r.add("invalid.rhsbl.example", "A", "127.0.0.2")
    assert not (await c.health_check())["ex"].healthy


async def test_all_lists_are_queried_concurrently() -> None:
    lists = [DNSList(f"l{i}", f"l{i}.example", fetch_txt=False) for i in range(6)]
    barrier = _Barrier(StaticResolver(), len(lists))
    c = DNSListChecker(barrier, lists, Clock())
    report = await asyncio.wait_for(c.check_ip("192.0.2.1"), 5)
    assert barrier.peak == len(lists)
    assert {r.status for r in report.results} == {ListStatus.NOT_LISTED}


async def test_allow_list_symbol_defaults() -> None:
    lst = DNSList("mywl", "wl.example", type=ListType.ALLOW, default_score=-2)
    r = StaticResolver({"1.2.0.192.wl.example": {"A": "127.0.0.2"}})
    report = await DNSListChecker(r, [lst], Clock()).check_ip("192.0.2.1")
    assert [(s.name, s.score) for s in report.symbols] == [("DNSWL_MYWL", -2)]
    assert report.allowed
    assert not report.listed


def test_duplicate_list_names_are_refused() -> None:
    with pytest.raises(ValueError, match="share a name"):
        DNSListChecker(StaticResolver(), [LISTS["zen"], LISTS["zen"]])


def test_defaults_document_keys() -> None:
    assert "DQS" in LISTS["zen"].needs_key
    assert "127.255.255.254" in LISTS["zen"].needs_key
    assert "registration" in LISTS["barracuda"].needs_key
    assert LISTS["spamcop"].needs_key == ""
    assert LISTS["dnswl"].type is ListType.ALLOW


class _Overlay:
    """Hides every name under one zone (a list that lost its test entries)."""

    def __init__(self, inner: StaticResolver, drop_suffix: str) -> None:
        self.inner = inner
        self.drop_suffix = drop_suffix

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        if name.endswith(self.drop_suffix):
            return await self.inner.resolve("nothing.invalid", rdtype)
        return await self.inner.resolve(name, rdtype)


class _Barrier:
    """Answers only once `n` queries are in flight together: sequential queries deadlock."""

    def __init__(self, inner: Resolver, n: int) -> None:
        self.inner = inner
        self.n = n
        self.waiting = 0
        self.peak = 0
        self.event = asyncio.Event()

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        self.waiting += 1
        self.peak = max(self.peak, self.waiting)
        if self.waiting >= self.n:
            self.event.set()
        await self.event.wait()
        return await self.inner.resolve(name, rdtype)
