"""The prefetch of policy trees: every record a literal policy tree needs is asked for, names no
query could carry and macro targets are skipped, DNS errors are ignored, depth is bounded."""

from __future__ import annotations

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
