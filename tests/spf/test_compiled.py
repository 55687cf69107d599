"""Compiled policies give exactly the interpreter's results, and expire with their TTLs."""

from __future__ import annotations

import importlib.util
import ipaddress
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.dns import StaticResolver
from mailwarden.spf import SPFChecker, SPFLimits, SPFStatus

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "spf_bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("spf_bench_for_compiled", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_generated_policies_agree_field_by_field(bench: ModuleType) -> None:
    """Include chains, mx, a, macros, redirects and limits from the benchmark's generator."""
    dataset = bench.build_dataset(120, 600, seed=11)
    static = bench.static_resolver(dataset.zone)
    interpreter = SPFChecker(static, receiver="mx.test", compile_after=None)
    compiled = SPFChecker(static, receiver="mx.test", compile_after=1)
    used = 0
    for ip, mail_from, helo in dataset.workload:
        expected = await interpreter.check_mailfrom(ip, mail_from, helo)
        got = await compiled.check_mailfrom(ip, mail_from, helo)
        assert got == expected, (ip, mail_from)
        used += 1
    assert used == 600
    assert any(policy is not None for _, policy in compiled._compiled.values())
    dynamic = [
        step
        for _, policy in compiled._compiled.values()
        if policy is not None
        for step in policy.steps
        if step.dynamic
    ]
    assert dynamic  # exists and macros: evaluated by the interpreter inside compiled runs


def zone() -> dict[str, dict[str, object]]:
    return {
        "example.com": {
            "TXT": "v=spf1 ip4:192.0.2.0/28 include:_spf.example.com mx -all",
            "MX": "10 mx.example.com",
        },
        "_spf.example.com": {"TXT": "v=spf1 ip4:198.51.100.0/24 ~all"},
        "mx.example.com": {"A": "203.0.113.5"},
    }


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_compiled_after_the_second_sighting_and_expired_with_the_ttl() -> None:
    static = StaticResolver(zone(), ttl=300)
    clock = Clock()
    checker = SPFChecker(static, clock=clock)
    first = await checker.check_mailfrom("203.0.113.5", "a@example.com", "h")
    assert first.result is SPFStatus.PASS
    assert not checker._compiled
    second = await checker.check_mailfrom("198.51.100.9", "a@example.com", "h")
    assert second.result is SPFStatus.PASS
    assert checker._compiled
    queries = len(static.queries)
    third = await checker.check_mailfrom("192.0.2.200", "a@example.com", "h")
    assert third.result is SPFStatus.FAIL
    assert len(static.queries) == queries  # no DNS at all
    assert third.dns_queries == 4  # what the interpreter counts: TXT, TXT, MX, A
    static.add("mx.example.com", "A", "192.0.2.200")
    clock.now += 299
    assert (await checker.check_mailfrom("192.0.2.200", "a@example.com", "h")).result is (
        SPFStatus.FAIL
    )
    clock.now += 2  # past the TTL: the new address is seen, interpreted, then compiled again
    for _ in range(3):
        result = await checker.check_mailfrom("192.0.2.200", "a@example.com", "h")
        assert result.result is SPFStatus.PASS


async def test_limits_depend_on_the_path_taken() -> None:
    """An address matched early in an include stops counting; a later one hits the limit."""
    includes = " ".join(f"include:i{n}.example.com" for n in range(9))
    static = StaticResolver(
        {
            "example.com": {"TXT": f"v=spf1 include:big.example.com {includes} -all"},
            "big.example.com": {
                "TXT": "v=spf1 ip4:192.0.2.1 a:h1.big.example.com a:h2.big.example.com ~all"
            },
            "h1.big.example.com": {"A": "198.51.100.1"},
            "h2.big.example.com": {"A": "198.51.100.2"},
            **{f"i{n}.example.com": {"TXT": "v=spf1 -all"} for n in range(9)},
        }
    )
    interpreter = SPFChecker(static, compile_after=None)
    compiled = SPFChecker(static, compile_after=1)
    for ip in ("192.0.2.1", "198.51.100.2", "203.0.113.1"):
        expected = await interpreter.check_mailfrom(ip, "a@example.com", "h")
        assert await compiled.check_mailfrom(ip, "a@example.com", "h") == expected
    early = await compiled.check_mailfrom("192.0.2.1", "a@example.com", "h")
    late = await compiled.check_mailfrom("203.0.113.1", "a@example.com", "h")
    assert early.result is SPFStatus.PASS
    assert late.result is SPFStatus.PERMERROR


async def test_dns_failure_while_compiling_falls_back_to_the_interpreter() -> None:
    static = StaticResolver(zone())
    static.fail("_spf.example.com")
    checker = SPFChecker(static, compile_after=1)
    result = await checker.check_mailfrom("192.0.2.1", "a@example.com", "h")
    assert result.result is SPFStatus.PASS  # matched before the failing include
    assert not checker._compiled  # nothing cached from a failed compilation
    result = await checker.check_mailfrom("203.0.113.9", "a@example.com", "h")
    assert result.result is SPFStatus.TEMPERROR


@pytest.mark.parametrize(
    "ip",
    [
        *("192.0.2.5", "192.0.2.15", "192.0.2.16", "192.0.2.200", "10.0.0.1", "0.0.0.0"),
        *("2001:db8::1", "255.255.255.255", "2001:db8:1::ffff", "198.51.100.1"),
    ],
)
async def test_merged_address_blocks_keep_first_match_order(ip: str) -> None:
    """Overlapping ranges with different qualifiers, merged into one bisected block."""
    record = (
        "v=spf1 -ip4:192.0.2.0/28 +ip4:192.0.2.0/24 ?ip6:2001:db8::/48 ip6:2001:db8::/32 "
        "~ip4:0.0.0.0/1 a:h.example.com ip4:198.51.100.0/24 -all"
    )
    static = StaticResolver({"example.com": {"TXT": record}, "h.example.com": {"A": "10.9.9.9"}})
    expected = await SPFChecker(static, compile_after=None).check_mailfrom(ip, "a@example.com", "h")
    got = await SPFChecker(static, compile_after=1).check_mailfrom(ip, "a@example.com", "h")
    assert got == expected


NESTED = {
    "example.com": {
        "TXT": "v=spf1 ip4:192.0.2.0/25 include:a.example.com -ip4:192.0.0.0/16 "
        "include:b.example.com ip4:198.51.100.0/24 ~all"
    },
    "a.example.com": {"TXT": "v=spf1 -ip4:192.0.2.128/26 ip4:192.0.2.0/24 ?all"},
    "b.example.com": {"TXT": "v=spf1 a:h.example.com ip4:10.0.0.0/8 include:a.example.com -all"},
    "h.example.com": {"A": ["192.0.3.1", "203.0.113.7"]},
}


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.ip_addresses(v=4, network="192.0.0.0/16"),
        st.ip_addresses(v=4, network="198.51.100.0/23"),
        st.ip_addresses(v=4),
    )
)
async def test_summaries_agree_with_the_interpreter(ip: ipaddress.IPv4Address) -> None:
    """The per-segment summary of a static tree gives what the interpreter gives, anywhere."""
    static = StaticResolver(NESTED)
    expected = await SPFChecker(static, compile_after=None).check_mailfrom(ip, "a@example.com", "h")
    checker = SPFChecker(static, compile_after=1)
    assert await checker.check_mailfrom(ip, "a@example.com", "h") == expected
    strict = SPFChecker(static, compile_after=1, limits=SPFLimits(dns_mechanisms=2))
    loose = SPFChecker(static, compile_after=None, limits=SPFLimits(dns_mechanisms=2))
    assert await strict.check_mailfrom(ip, "a@example.com", "h") == await loose.check_mailfrom(
        ip, "a@example.com", "h"
    )
