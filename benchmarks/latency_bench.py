"""Latency of a full verdict when every DNS answer takes 20 ms, against the physical floor.

Run from the project root::

    python benchmarks/latency_bench.py            # 60 messages
    python benchmarks/latency_bench.py --quick --json
    python benchmarks/latency_bench.py --nsd      # real sockets: nsd, answers delayed 20 ms

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

`--nsd` measures through real sockets instead: the same zone served by nsd on loopback
behind a relay process that sends every answer back `--delay` later, queried through our
resolver (`SystemResolver`, the lean UDP transport) with a fresh cache per message. It reports
one message at a time (p50 against the floor: goal 1.10) and `--in-flight` messages at once
(p50/p95/p99: goal p99 <= 3x p50) with the kernel's count of UDP datagrams dropped for a full
receive buffer during the run (goal: none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden import runtime
from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import Answer, RdType, StaticResolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.dns.system import SystemResolver
from mailwarden.pipeline import build as build_pipeline
from mailwarden.policy import Action
from mailwarden.settings import DNSListSettings, GatewaySettings, Settings

GOAL = 1.10  # measured / floor
TAIL_GOAL = 3.0  # p99 / p50 with many messages in flight


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


class Zone(StaticResolver):
    """A static zone that also keeps its records, to be written as master files for nsd."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str, str]] = []

    def add(self, name: str, rdtype: RdType | str, value: object, ttl: int | None = None) -> None:
        super().add(name, rdtype, value, ttl)
        self.records.append((name, str(rdtype), str(value)))

    def master_files(self, apexes: Sequence[str]) -> dict[str, str]:
        """One master file per apex, every record under its longest apex."""
        files = {
            apex: [
                f"$ORIGIN {apex}.",
                "$TTL 300",
                f"@ IN SOA ns.{apex}. hostmaster.{apex}. 1 3600 600 86400 300",
                f"@ IN NS ns.{apex}.",
            ]
            for apex in apexes
        }
        for name, rdtype, value in self.records:
            apex = max((a for a in apexes if name == a or name.endswith("." + a)), key=len)
            if rdtype == "TXT":
                value = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
            elif rdtype in ("MX", "PTR"):
                value = value if value.endswith(".") else value + "."
            files[apex].append(f"{name}. IN {rdtype} {value}")
        return {apex: "\n".join(lines) + "\n" for apex, lines in files.items()}


APEXES = ("example", "51.198.in-addr.arpa", "zen.spamhaus.org")


def build(n: int) -> tuple[Zone, list[Case]]:
    zone = Zone()
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


def require_right(case: Case, verdict: Any) -> None:
    """Timing counts only for right verdicts: accepted (SPF pass) or, for a spoof, refused."""
    expected = Action.REJECT if case.spoof else Action.ACCEPT
    if verdict.policy.action is not expected or verdict.spf.result.value != "pass":
        raise SystemExit(
            f"wrong verdict for {case.domain}: {verdict.policy.action} (spf "
            f"{verdict.spf.result}, dmarc {verdict.dmarc.result}): {verdict.policy.reasons}"
        )


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
        require_right(case, verdict)
        out.append((case, elapsed, slow.queries))
    return out


# ------------------------------------------------------------- real sockets, delayed link


class _Delay(asyncio.DatagramProtocol):
    """The client side of the delaying relay: each query goes to nsd from a socket kept per
    client address; each answer is sent back `delay` seconds after nsd gave it."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self.front: asyncio.DatagramTransport | None = None
        self.back: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self.opening: dict[tuple[str, int], list[bytes]] = {}
        self.tasks: set[asyncio.Future[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.front = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, client: tuple[str, int]) -> None:
        back = self.back.get(client)
        if back is not None:
            back.sendto(data)
        elif client in self.opening:
            self.opening[client].append(data)
        else:
            self.opening[client] = [data]
            task = asyncio.ensure_future(self._open(client))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _open(self, client: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        relay, delay = self, self.delay

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _: tuple[str, int]) -> None:
                assert relay.front is not None
                loop.call_later(delay, relay.front.sendto, data, client)

        back, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.upstream)
        self.back[client] = back
        for data in self.opening.pop(client):
            back.sendto(data)


def _relay(port: int, upstream: tuple[str, int], delay: float) -> None:
    """The relay process: 127.0.0.1:`port` -> nsd, answers delayed (uvloop)."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: _Delay(upstream, delay), local_addr=("127.0.0.1", port)
        )
        await asyncio.Event().wait()

    import uvloop

    uvloop.run(serve())


@contextlib.contextmanager
def delayed_nsd(zone: Zone, delay: float) -> Iterator[tuple[str, int]]:
    """nsd serving `zone` on loopback behind a relay, in a process of its own, that delays
    every answer by `delay` seconds (the kernel's netem would add no CPU, but this machine's
    kernel has no netem); yields the relay's (address, port)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.dns.nsd
    from tests.dns.nsd import _free_port, nsd_program, start_nsd

    if nsd_program() is None:
        raise SystemExit("--nsd needs nsd (Debian package nsd)")
    with tempfile.TemporaryDirectory(prefix="latency-nsd-") as folder:
        nsd = start_nsd(Path(folder), zone.master_files(APEXES))
        port = _free_port()
        relay = multiprocessing.get_context("fork").Process(
            target=_relay, args=(port, ("127.0.0.1", nsd.port), delay), daemon=True
        )
        relay.start()
        try:
            _wait_for_answers(("127.0.0.1", port), delay)
            yield "127.0.0.1", port
        finally:
            relay.terminate()
            relay.join(10)
            nsd.stop()


def _wait_for_answers(server: tuple[str, int], delay: float) -> None:
    """Until the relay passes nsd's answer on (each one `delay` late)."""
    query = b"\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x00\x00\x06\x00\x01"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5 + 2 * delay)
            try:
                sock.sendto(query, server)
                if sock.recv(4096)[:2] == b"\x42\x42":
                    return
            except OSError:
                time.sleep(0.05)
    raise SystemExit("the delaying relay in front of nsd did not answer")


def udp_receive_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (this namespace)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    names, values = [row for row in lines if row and row[0] == "Udp:"][:2]
    return int(values[names.index("RcvbufErrors")])


async def over_sockets(
    cases: Sequence[Case], server: tuple[str, int], in_flight: int, total: int
) -> dict[str, Any]:
    """One message at a time, then `total` messages with `in_flight` at once; a fresh cache
    for every message, one resolver (its socket pool) for all, as a running server has."""
    settings = Settings(
        gateway=GatewaySettings(hostname="mx.b.example"), dnsbl=DNSListSettings(use=("zen",))
    )
    system = SystemResolver([server], timeout=2.0)

    def fresh() -> Any:
        """A pipeline with an empty cache (built before the clock starts: a server builds
        its pipeline once, so its cost is no message's)."""
        return build_pipeline(settings, CachingResolver(system))

    async def one(case: Case, checker: Any) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        verdict = await checker.check(
            case.message, ip=case.ip, helo=case.helo, mail_from=f"alice@{case.domain}"
        )
        elapsed = time.perf_counter() - started
        await checker.drain()
        require_right(case, verdict)
        return elapsed, time.process_time() - cpu

    await one(cases[0], fresh())  # sockets opened, code paths warmed
    sequential = [(case, *await one(case, fresh())) for case in cases]
    gate = asyncio.Semaphore(in_flight)

    async def gated(case: Case, checker: Any) -> float:
        async with gate:
            elapsed, _ = await one(case, checker)
            return elapsed

    work = [(cases[i % len(cases)], fresh()) for i in range(total)]
    dropped_before = udp_receive_errors()
    started, cpu = time.perf_counter(), time.process_time()
    burst = await asyncio.gather(*(gated(case, checker) for case, checker in work))
    wall, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    dropped = udp_receive_errors() - dropped_before
    system.close()
    return {
        "sequential": sequential,
        "burst": sorted(burst),
        "wall": wall,
        "cpu": cpu_used,
        "dropped": dropped,
    }


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report_sockets(
    zone: Zone, cases: Sequence[Case], delay: float, in_flight: int, total: int, as_json: bool
) -> int:
    with delayed_nsd(zone, delay) as server:
        found = runtime.run(over_sockets(cases, server, in_flight, total))  # uvloop, as served
    ratios = [elapsed / (case.floor_rounds * delay) for case, elapsed, _ in found["sequential"]]
    burst = found["burst"]
    p50, p95, p99 = (_percentile(burst, f) for f in (0.50, 0.95, 0.99))
    summary: dict[str, Any] = {
        "mode": "nsd",
        "messages": len(cases),
        "delay_ms": delay * 1000,
        "sequential": {
            "p50_ratio": _percentile(ratios, 0.5),
            "p95_ratio": _percentile(ratios, 0.95),
            "max_ratio": max(ratios),
            "cpu_ms_per_message": 1000 * statistics.mean(c for _, _, c in found["sequential"]),
            "goal": GOAL,
        },
        "in_flight": {
            "in_flight": in_flight,
            "messages": total,
            "per_second": total / found["wall"],
            "cpu_ms_per_message": 1000 * found["cpu"] / total,
            "p50_ms": p50 * 1000,
            "p95_ms": p95 * 1000,
            "p99_ms": p99 * 1000,
            "p99_over_p50": p99 / p50,
            "udp_dropped": found["dropped"],
            "goal": TAIL_GOAL,
        },
    }
    if as_json:
        print(json.dumps(summary))
        return 0
    seq, many = summary["sequential"], summary["in_flight"]
    print(f"real sockets: nsd on loopback, every answer delayed {delay * 1000:g} ms")
    print(
        f"one at a time ({len(cases)} messages, fresh cache each): measured / floor p50 "
        f"{seq['p50_ratio']:.3f}, p95 {seq['p95_ratio']:.3f}, max {seq['max_ratio']:.3f} "
        f"(goal p50 <= {GOAL}); CPU {seq['cpu_ms_per_message']:.2f} ms/message"
    )
    print(
        f"{in_flight} in flight ({total} messages): {many['per_second']:.0f} msgs/s, CPU "
        f"{many['cpu_ms_per_message']:.2f} ms/message; p50 {many['p50_ms']:.0f} ms, p95 "
        f"{many['p95_ms']:.0f} ms, p99 {many['p99_ms']:.0f} ms: p99/p50 "
        f"{many['p99_over_p50']:.2f} (goal <= {TAIL_GOAL}); UDP datagrams dropped: "
        f"{many['udp_dropped']} (goal 0)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--delay", type=float, default=0.020)
    parser.add_argument("--quick", action="store_true", help="6 messages")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.add_argument("--nsd", action="store_true", help="real sockets: nsd behind netem")
    parser.add_argument("--in-flight", type=int, default=50, help="with --nsd")
    parser.add_argument("--burst", type=int, default=500, help="messages in the --nsd burst")
    args = parser.parse_args(argv)
    n = 6 if args.quick else args.messages
    zone, cases = build(n)
    if args.nsd:
        return report_sockets(zone, cases, args.delay, args.in_flight, args.burst, args.json)
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
