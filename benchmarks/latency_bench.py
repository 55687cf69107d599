"""Latency of a full verdict when every DNS answer takes 20 ms, against the physical floor.

Run from the project root::

    python benchmarks/latency_bench.py            # 60 messages
    python benchmarks/latency_bench.py --quick --json

Each message is checked from MAIL FROM to the policy's verdict (SPF for both identities, DKIM,
DMARC, iprev, HELO, a DNS list) with a fresh cache, through a resolver that answers every query
after `--delay` seconds. The floor is the longest chain of lookups that depend on each other's
answers, times the delay; independent lookups cost nothing extra if they run concurrently.
For the generated senders the longest chain is the SPF policy of the MAIL FROM domain:

    TXT(domain) -> TXT(include level 1) -> ... -> TXT(include level k)
                -> A(a:host) and MX(domain) -> A(MX host)       (k + 3 round trips)

where the authorising ip4: term comes last in the deepest record, so every term before it
must be evaluated (RFC 7208 §4.6.2 first match). The other chains are shorter: iprev
(PTR -> A: 2), HELO SPF (TXT -> A: 2), DKIM key (1), DMARC Tree Walk (1: every name is known
from the From domain), DNS list (A -> TXT: 2). The script checks each message's verdict (pass
for the legitimate ones, DMARC reject for spoofs) before timing counts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import Answer, RdType, StaticResolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.pipeline import build as build_pipeline
from mailwarden.policy import Action
from mailwarden.settings import DNSListSettings, GatewaySettings, Settings

GOAL = 1.10  # measured / floor


@dataclass(frozen=True)
class Case:
    domain: str
    depth: int  # include levels
    ip: str
    helo: str
    message: bytes
    spoof: bool

    @property
    def floor_rounds(self) -> int:
        return max(self.depth + 3, 2)


class DelayingResolver:
    """Every answer (or negative answer) arrives `delay` seconds after the question."""

    def __init__(self, inner: StaticResolver, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.queries = 0

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        self.queries += 1
        await asyncio.sleep(self.delay)
        return await self.inner.resolve(name, rdtype)


def build(n: int) -> tuple[StaticResolver, list[Case]]:
    zone = StaticResolver()
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    record = key_record(key)
    cases: list[Case] = []
    for i in range(n):
        domain = f"s{i:03d}.example"
        depth = 1 + i % 3
        net = f"198.51.{i % 250}.0/24"
        ip = f"198.51.{i % 250}.25"
        names = [domain] + [f"_spf{level}.{domain}" for level in range(1, depth + 1)]
        for parent, child in itertools.pairwise(names):
            zone.add(parent, "TXT", f"v=spf1 include:{child} -all")
        zone.add(names[-1], "TXT", f"v=spf1 a:host.{domain} mx:{domain} ip4:{net} -all")
        zone.add(f"host.{domain}", "A", "192.0.2.200")
        zone.add(domain, "MX", f"10 mx.{domain}")
        zone.add(f"mx.{domain}", "A", "192.0.2.201")
        helo = f"out.{domain}"
        zone.add(helo, "A", ip)
        zone.add(helo, "TXT", "v=spf1 a -all")
        zone.add(".".join(reversed(ip.split("."))) + ".in-addr.arpa", "PTR", helo)
        zone.add(f"sel._domainkey.{domain}", "TXT", record)
        zone.add(f"_dmarc.{domain}", "TXT", "v=DMARC1; p=reject")
        spoof = i % 5 == 4
        author = f"ceo@bank{i}.example" if spoof else f"alice@{domain}"
        if spoof:
            zone.add(f"_dmarc.bank{i}.example", "TXT", "v=DMARC1; p=reject")
            zone.add(f"bank{i}.example", "A", "203.0.113.1")
        body = b"Hello.\r\n" * 40
        message = (
            f"From: {author}\r\nTo: bob@b.example\r\nSubject: n{i}\r\n"
            f"Message-ID: <{i}@{domain}>\r\n\r\n"
        ).encode() + body
        if not spoof:
            message = sign(message, domain, "sel", key, timestamp=int(time.time())) + message
        cases.append(Case(domain, depth, ip, helo, message, spoof))
    return zone, cases


async def measure(
    zone: StaticResolver, cases: Sequence[Case], delay: float
) -> list[tuple[Case, float, int]]:
    settings = Settings(
        gateway=GatewaySettings(hostname="mx.b.example"), dnsbl=DNSListSettings(use=("zen",))
    )
    out: list[tuple[Case, float, int]] = []
    for case in cases:
        slow = DelayingResolver(zone, delay)
        resolver = CachingResolver(slow)  # a fresh, empty cache for every message
        checker = build_pipeline(settings, resolver)
        started = time.perf_counter()
        verdict = await checker.check(
            case.message, ip=case.ip, helo=case.helo, mail_from=f"alice@{case.domain}"
        )
        elapsed = time.perf_counter() - started
        await checker.drain()
        expected = Action.REJECT if case.spoof else Action.ACCEPT
        if verdict.policy.action is not expected or verdict.spf.result.value != "pass":
            raise SystemExit(
                f"wrong verdict for {case.domain}: {verdict.policy.action} (spf "
                f"{verdict.spf.result}, dmarc {verdict.dmarc.result}): {verdict.policy.reasons}"
            )
        out.append((case, elapsed, slow.queries))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--delay", type=float, default=0.020)
    parser.add_argument("--quick", action="store_true", help="6 messages")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    args = parser.parse_args(argv)
    n = 6 if args.quick else args.messages
    zone, cases = build(n)
    results = asyncio.run(measure(zone, cases, args.delay))
    ratios = [elapsed / (case.floor_rounds * args.delay) for case, elapsed, _ in results]
    by_depth: dict[int, list[float]] = {}
    for case, elapsed, _ in results:
        by_depth.setdefault(case.floor_rounds, []).append(elapsed)
    summary: dict[str, Any] = {
        "messages": n,
        "delay_ms": args.delay * 1000,
        "mean_ratio": statistics.mean(ratios),
        "max_ratio": max(ratios),
        "p95_ratio": sorted(ratios)[int(0.95 * (len(ratios) - 1))],
        "queries_per_message": statistics.mean(q for _, _, q in results),
        "by_floor": {
            f"{rounds} rounds": {
                "floor_ms": rounds * args.delay * 1000,
                "mean_ms": statistics.mean(times) * 1000,
                "max_ms": max(times) * 1000,
            }
            for rounds, times in sorted(by_depth.items())
        },
        "goal": GOAL,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"latency of a full verdict, every DNS answer delayed {args.delay * 1000:g} ms")
    print(f"messages: {n} (every fifth a spoof rejected by DMARC), fresh cache each")
    print(f"DNS queries per message (mean): {summary['queries_per_message']:.1f}")
    print(f"{'floor':>10} {'floor ms':>9} {'mean ms':>8} {'max ms':>8} {'mean/floor':>10}")
    for label, row in summary["by_floor"].items():
        ratio = row["mean_ms"] / row["floor_ms"]
        print(
            f"{label:>10} {row['floor_ms']:>9.0f} {row['mean_ms']:>8.1f} "
            f"{row['max_ms']:>8.1f} {ratio:>10.3f}"
        )
    print(
        f"measured / floor: mean {summary['mean_ratio']:.3f}, p95 {summary['p95_ratio']:.3f}, "
        f"max {summary['max_ratio']:.3f} (goal <= {GOAL})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
