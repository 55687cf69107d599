"""The prefetch of policy trees: every record a literal policy tree needs is asked for, names no
query could carry and macro targets are skipped, DNS errors are ignored, depth is bounded."""

from __future__ import annotations

import ipaddress

from mailwarden.dns import Answer, RdType, Resolver, StaticResolver
from mailwarden.spf import SPFLimits, parse_record
from mailwarden.spf.prefetch import Prefetcher


class Recorder:
    """Records every query before passing it on."""

    def __init__(self, inner: Resolver) -> None:
        self.inner = inner
        self.asked: list[tuple[str, RdType]] = []

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        self.asked.append((name, rdtype))
        return await self.inner.resolve(name, rdtype)


async def fetched(
    zone: dict[str, dict[str, object]], version: int = 4, limits: SPFLimits | None = None
) -> list[tuple[str, RdType]]:
    recorder = Recorder(StaticResolver(zone))  # type: ignore[arg-type]
    parse = lambda raw: parse_record(raw.decode())  # noqa: E731
    await Prefetcher(recorder, parse, limits or SPFLimits()).tree("example.com", version)
    return recorder.asked


async def test_the_whole_tree_is_asked_for() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {"TXT": "v=spf1 a mx:mx.example.com include:inc.example.com -all"},
        "mx.example.com": {"MX": (10, "mail.example.com")},
        "inc.example.com": {"TXT": "v=spf1 a:host.example.net redirect=red.example.org"},
        "red.example.org": {"TXT": "v=spf1 -all"},
    }
    asked = set(await fetched(zone))
    assert asked == {
        ("example.com", RdType.TXT),
        ("example.com", RdType.A),  # bare a: the domain itself
        ("mx.example.com", RdType.MX),
        ("mail.example.com", RdType.A),
        ("inc.example.com", RdType.TXT),
        ("host.example.net", RdType.A),
        ("red.example.org", RdType.TXT),  # redirect without all: followed
    }
    assert ("mail.example.com", RdType.AAAA) in set(await fetched(zone, version=6))


async def test_macros_invalid_names_and_exists_are_skipped() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {
            "TXT": "v=spf1 a:%{d}.example.net include:bad..name exists:e.example.com "
            "ptr:p.example.com redirect=r.example.com -all"
        },
    }
    assert await fetched(zone) == [("example.com", RdType.TXT)]


async def test_errors_and_broken_records_stop_quietly() -> None:
    assert await fetched({}) == [("example.com", RdType.TXT)]  # NXDOMAIN
    broken: dict[str, dict[str, object]] = {"example.com": {"TXT": "v=spf1 nonsense:x"}}
    assert await fetched(broken) == [("example.com", RdType.TXT)]
    two: dict[str, dict[str, object]] = {"example.com": {"TXT": ["v=spf1 a -all", "v=spf1 -all"]}}
    assert await fetched(two) == [("example.com", RdType.TXT)]  # two records: a permerror


async def test_depth_is_bounded_by_the_dns_term_limit() -> None:
    zone: dict[str, dict[str, object]] = {"example.com": {"TXT": "v=spf1 include:example.com"}}
    asked = await fetched(zone, limits=SPFLimits(dns_mechanisms=3))
    assert asked == [("example.com", RdType.TXT)] * 4  # depth 0..3, then it stops


async def fetched_for(zone: dict[str, dict[str, object]], ip: str) -> list[tuple[str, RdType]]:
    """What the prefetch asks for a client at `ip` (a literal address)."""
    recorder = Recorder(StaticResolver(zone))  # type: ignore[arg-type]
    parse = lambda raw: parse_record(raw.decode())  # noqa: E731
    address = ipaddress.ip_address(ip)
    await Prefetcher(recorder, parse, SPFLimits()).tree(
        "example.com", address.version, address=address
    )
    return recorder.asked


PROVIDER: dict[str, dict[str, object]] = {
    "example.com": {"TXT": "v=spf1 mx include:_spf.prov.example -all"},
    "_spf.prov.example": {"TXT": "v=spf1 ip4:10.0.0.0/16 include:_spf2.prov.example ~all"},
    "_spf2.prov.example": {"TXT": "v=spf1 ip4:10.100.0.0/16 ?all"},
}


async def test_terms_after_a_range_holding_the_client_are_not_asked() -> None:
    """RFC 7208 §4.6.2: ip4:10.0.0.0/16 matches 10.0.3.4, so the provider's second include
    can never be evaluated; everything before the match still is."""
    asked = await fetched_for(PROVIDER, "10.0.3.4")
    assert ("_spf2.prov.example", RdType.TXT) not in asked
    assert set(asked) == {
        ("example.com", RdType.TXT),
        ("example.com", RdType.MX),  # before the include: evaluated first
        ("_spf.prov.example", RdType.TXT),
    }


async def test_a_client_outside_the_range_gets_the_whole_tree() -> None:
    asked = await fetched_for(PROVIDER, "10.100.0.9")
    assert ("_spf2.prov.example", RdType.TXT) in asked
    # an IPv6 client never matches an ip4 range: the tree is asked as before
    assert ("_spf2.prov.example", RdType.TXT) in await fetched_for(PROVIDER, "2001:db8::1")


async def test_a_matching_range_ends_the_record_but_not_what_comes_before() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {
            "TXT": "v=spf1 include:first.example ip4:192.0.2.0/24 a:after.example "
            "redirect=red.example"
        },
        "first.example": {"TXT": "v=spf1 -all"},
        "red.example": {"TXT": "v=spf1 -all"},
    }
    asked = await fetched_for(zone, "192.0.2.1")
    assert ("first.example", RdType.TXT) in asked  # before the match: needed
    assert ("after.example", RdType.A) not in asked  # after it: never reached
    assert ("red.example", RdType.TXT) not in asked  # a match ends before redirect (§6.1)
    elsewhere = await fetched_for(zone, "198.51.100.1")
    assert ("after.example", RdType.A) in elsewhere
    assert ("red.example", RdType.TXT) in elsewhere


async def test_nothing_after_all_is_asked() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {"TXT": "v=spf1 a:before.example ?all include:after.example"},
    }
    asked = await fetched(zone)
    assert ("before.example", RdType.A) in asked
    assert ("after.example", RdType.TXT) not in asked
