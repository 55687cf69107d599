"""StaticResolver: master files and mappings, CNAMEs, NXDOMAIN versus NODATA, failures."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.dns.test_master import old_loader

from mailwarden.dns import (
    MX,
    TXT,
    CountingResolver,
    Failure,
    NoData,
    NXDomain,
    RdType,
    StaticResolver,
    TemporaryFailure,
)

MASTER = """\
$TTL 600
$ORIGIN example.test.
@          IN A     192.0.2.1
@          IN AAAA  2001:db8::1
@          IN MX    10 mx.example.test.
@          IN MX    20 mx2
@    300   IN TXT   "v=spf1 " "ip4:192.0.2.0/24 -all"
mx         IN A     192.0.2.25
www        IN CNAME @
loop1      IN CNAME loop2
loop2      IN CNAME loop1
deep.empty IN A     192.0.2.9
1.2.0.192.in-addr.arpa. IN PTR example.test.
unknown    IN HINFO "cpu" "os"
"""


@pytest.fixture
def resolver() -> StaticResolver:
    static = StaticResolver()
    static.load_master_text(MASTER)
    return static


async def test_master_file_records_are_typed(resolver: StaticResolver) -> None:
    a = await resolver.resolve("Example.Test.", RdType.A)
    assert a.addresses() == [ipaddress.ip_address("192.0.2.1")]
    assert a.ttl == 600
    mx = await resolver.resolve("example.test", RdType.MX)
    assert mx.mx() == [MX(10, "mx.example.test"), MX(20, "mx2.example.test")]
    txt = await resolver.resolve("example.test", RdType.TXT)
    assert txt.txt() == [TXT((b"v=spf1 ", b"ip4:192.0.2.0/24 -all"))]
    assert txt.txt()[0].joined == b"v=spf1 ip4:192.0.2.0/24 -all"
    assert txt.ttl == 300
    ptr = await resolver.resolve("1.2.0.192.in-addr.arpa", RdType.PTR)
    assert ptr.names() == ["example.test"]


async def test_cname_is_followed(resolver: StaticResolver) -> None:
    answer = await resolver.resolve("www.example.test", RdType.A)
    assert answer.name == "www.example.test"
    assert answer.addresses() == [ipaddress.ip_address("192.0.2.1")]
    cname = await resolver.resolve("www.example.test", RdType.CNAME)
    assert cname.names() == ["example.test"]


async def test_cname_loop_is_a_temporary_failure(resolver: StaticResolver) -> None:
    with pytest.raises(TemporaryFailure):
        await resolver.resolve("loop1.example.test", RdType.A)


async def test_nxdomain_versus_nodata(resolver: StaticResolver) -> None:
    with pytest.raises(NXDomain):
        await resolver.resolve("missing.example.test", RdType.A)
    with pytest.raises(NoData):
        await resolver.resolve("mx.example.test", RdType.TXT)
    with pytest.raises(NoData):  # an empty non-terminal exists (RFC 8020)
        await resolver.resolve("empty.example.test", RdType.A)
    with pytest.raises(NoData):  # unknown types are skipped, the name still exists
        await resolver.resolve("unknown.example.test", RdType.TXT)


async def test_mapping_forms() -> None:
    static = StaticResolver(
        {
            "example.test": {
                "A": ["192.0.2.1", "192.0.2.2"],
                "MX": (10, "mx.example.test."),
                "TXT": [["part one ", "part two"], "x" * 300],
            },
            "other.test": {"MX": ["5 a.other.test", "10 b.other.test"], "AAAA": "2001:db8::2"},
        }
    )
    assert len((await static.resolve("example.test", RdType.A)).addresses()) == 2
    assert (await static.resolve("example.test", RdType.MX)).mx() == [MX(10, "mx.example.test")]
    txts = (await static.resolve("example.test", RdType.TXT)).txt()
    assert txts[0].strings == (b"part one ", b"part two")
    assert [len(s) for s in txts[1].strings] == [255, 45]  # long strings split at 255 bytes
    assert len((await static.resolve("other.test", RdType.MX)).mx()) == 2


@pytest.mark.parametrize(
    ("rdtype", "value"), [("A", "2001:db8::1"), ("AAAA", "192.0.2.1"), ("MX", object())]
)
def test_bad_mapping_values_are_refused(rdtype: str, value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        StaticResolver({"example.test": {rdtype: value}})  # type: ignore[dict-item]


def test_malformed_master_file() -> None:
    with pytest.raises(ValueError, match=r"\S"):
        StaticResolver().load_master_text("example.test. IN A not-an-address\n")


def test_master_files_from_disk(tmp_path: Path) -> None:
    one = tmp_path / "one.zone"
    one.write_text("a.test. 60 IN A 192.0.2.1\n")
    two = tmp_path / "two.zone"
    two.write_text("b.test. 60 IN A 192.0.2.2\n")
    static = StaticResolver.from_master_files([one, two])
    asyncio.run(static.resolve("b.test", RdType.A))


async def test_simulated_failures(resolver: StaticResolver) -> None:
    resolver.fail("example.test", "TXT")
    resolver.fail("mx.example.test", failure=Failure.SERVFAIL)
    with pytest.raises(TemporaryFailure, match="timeout"):
        await resolver.resolve("example.test", RdType.TXT)
    assert (await resolver.resolve("example.test", RdType.A)).addresses()  # other types answer
    with pytest.raises(TemporaryFailure, match="servfail"):
        await resolver.resolve("mx.example.test", RdType.A)
    with pytest.raises(TemporaryFailure):  # a failing CNAME target fails the alias too
        await resolver.resolve("www.example.test", RdType.TXT)


async def test_simulated_delay(resolver: StaticResolver) -> None:
    resolver.fail("example.test", "MX", delay=0.05)
    started = time.monotonic()
    with pytest.raises(TemporaryFailure):
        await resolver.resolve("example.test", RdType.MX)
    assert time.monotonic() - started >= 0.05


async def test_counting_resolver_counts_every_query(resolver: StaticResolver) -> None:
    counting = CountingResolver(resolver)
    await counting.resolve("example.test", RdType.A)
    with pytest.raises(NXDomain):
        await counting.resolve("missing.example.test", RdType.A)
    assert counting.queries == 2
    assert resolver.queries[-2:] == [
        ("example.test", RdType.A),
        ("missing.example.test", RdType.A),
    ]


def generated_zone(count: int) -> str:
    """A zone of `count` records of the kinds a mail domain publishes, several per name."""
    lines = ["$TTL 600", "$ORIGIN zone.test."]
    for i in range(count):
        kind = i % 8
        name = f"h{i // 4}"
        if kind < 4:
            lines.append(f"{name} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        elif kind == 4:
            lines.append(f"{name} 300 IN AAAA 2001:db8::{i:x}")
        elif kind == 5:
            lines.append(f'{name} IN TXT "v=spf1 ip4:10.0.0.0/8 " "-all"')
        elif kind == 6:
            lines.append(f"{name} IN MX {i % 50} mx{i % 7}")
        else:
            lines.append(f"alias{i} IN CNAME {name}")
    return "\n".join(lines) + "\n"


def _load_cpu_seconds(text: str) -> float:
    """CPU seconds to load `text` (the best of three: CPU time, so a busy machine does not
    count against the loader). The cyclic garbage collector is held off meanwhile: late in a
    full run its passes scan the whole test process's heap, which grows the larger load's time
    by more than the loader's own work does (seen: a ratio of 13 for a linear loader)."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            started = time.process_time()
            StaticResolver().load_master_text(text)
            best = min(best, time.process_time() - started)
    finally:
        gc.enable()
    return best


def _growth(make: Callable[[int], str], small: int) -> float:
    """How many times longer four times as many records take: about 4 when loading is
    linear, about 16 when it is quadratic (as it was: 4,000 lines took 30 s)."""
    return _load_cpu_seconds(make(4 * small)) / max(_load_cpu_seconds(make(small)), 1e-4)


def test_a_large_zone_loads_in_linear_time() -> None:
    # Issue 11 §6: 4,000 lines took about 30 s before the gateway listened (quadratic).
    assert _growth(generated_zone, 2_500) < 8
    static = StaticResolver()
    static.load_master_text(generated_zone(10_000))
    assert len(static._records) > 4_000


def test_a_zone_left_to_dnspython_loads_in_linear_time() -> None:
    # One record of a type the fast reader does not read sends the file to dnspython's reader,
    # whose CNAME-and-other-data check scanned every record set read so far (quadratic).
    def with_hinfo(count: int) -> str:
        return generated_zone(count) + 'h0 IN HINFO "cpu" "os"\n'

    assert _growth(with_hinfo, 1_000) < 8


@pytest.mark.parametrize(
    "text",
    [MASTER, MASTER.replace("unknown    IN HINFO", "; "), generated_zone(600)],
    ids=["dnspython", "fast", "generated"],
)
async def test_loading_answers_as_the_old_loader(text: str) -> None:
    fast = StaticResolver()
    fast.load_master_text(text)
    old = StaticResolver()
    for owner, rdtype, ttl, record in old_loader(text):
        if rdtype is None:
            old.mark_existing(owner)
        else:
            old.add(owner, rdtype, record, ttl)
    names = {owner for owner, *_ in old_loader(text)} | {"missing.zone.test", "zone.test", "test"}
    for name in sorted(names):
        for rdtype in RdType:
            assert await answer(fast, name, rdtype) == await answer(old, name, rdtype)


async def answer(resolver: StaticResolver, name: str, rdtype: RdType) -> object:
    try:
        return await resolver.resolve(name, rdtype)
    except (NXDomain, NoData, TemporaryFailure) as exc:
        return type(exc).__name__, exc.ttl if not isinstance(exc, TemporaryFailure) else None
