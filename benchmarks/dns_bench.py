"""CPU per cold DNS query and queries per second, per resolver, against nsd on loopback.

Run from the project root (needs the Debian package nsd; `make system-deps` installs it)::

    python benchmarks/dns_bench.py            # 2,000 distinct queries, 100 in flight, 3 rounds
    python benchmarks/dns_bench.py --quick --json

The candidates, side by side in one run, each on asyncio's own event loop and on uvloop's:

* dnspython: dnspython's asyncio stub resolver as mailwarden used it before this benchmark (one
  UDP endpoint per query, dnspython's message objects), kept here as the baseline;
* mailwarden: `mailwarden.dns.system.SystemResolver` (a pool of connected UDP sockets per
  server read through loop.add_reader, mailwarden's lean codec);
* mw-protocol: the same, its sockets read through asyncio's DatagramProtocol instead;
* mw+cache: `SystemResolver` behind `mailwarden.dns.cache.CachingResolver`, as every pipeline
  uses it: the cold query end to end (send, receive, parse, cache), the issue's measure;
* c-ares: pycares through aiodns, when installed (`pip install aiodns`); c-ares runs its own
  event thread, whose CPU counts too. It cannot give the SOA of a negative answer (no negative
  TTL) and joins TXT strings, so it is measured, not a drop-in.

Every run uses a fresh resolver (no cache anywhere: cold), asks the same mix of distinct
questions (TXT, A, MX, an AAAA that is NODATA, an A that is NXDOMAIN), and its outcomes are
checked against the zone before its figures count. CPU is the process's CPU time (every thread)
over the queries; nsd runs in its own process. "harness" is the cost of the driving loop with a
resolver that answers at once from memory: what no resolver can go below. Each figure is the
best of `--rounds` interleaved rounds. Where readable, the kernel's UDP receive-buffer drops
during the runs are counted (/proc/net/snmp).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.dns.nsd

from tests.dns.nsd import nsd_program, start_nsd

from mailwarden.dns import MX, TXT, Answer, DNSError, NoData, NXDomain, RdType, transport
from mailwarden.dns import TemporaryFailure as TempFail
from mailwarden.dns._convert import convert_rdata
from mailwarden.dns.cache import CachingResolver
from mailwarden.dns.names import normalize
from mailwarden.dns.system import SystemResolver

GOAL_CPU_US = 60.0  # issue 14: a cold query costs at most 60 µs of CPU end to end
APEX = "bench.test"
Query = tuple[str, RdType]
Outcome = tuple[Any, ...]


# ------------------------------------------------------------------------ the zone and queries


def zone_text(names: int) -> str:
    lines = [
        f"$ORIGIN {APEX}.",
        "$TTL 300",
        "@ SOA ns hostmaster 1 3600 600 86400 60",
        "@ NS ns",
        "ns A 127.0.0.1",
    ]
    for i in range(names):
        lines.append(f"h{i} A 192.0.{i % 250}.{i // 250 % 250 + 1}")
        lines.append(
            f'h{i} TXT "v=spf1 ip4:198.51.100.{i % 250}/32 include:_spf.h{i}.{APEX}" " -all"'
        )
        lines.append(f"h{i} MX 10 mx{i % 7}.h{i}")
    return "\n".join(lines) + "\n"


def queries(count: int) -> list[Query]:
    """Distinct questions: 4 in 10 TXT, 3 A, 1 MX, 1 NODATA (AAAA), 1 NXDOMAIN."""
    kinds = [RdType.TXT] * 4 + [RdType.A] * 3 + [RdType.MX, RdType.AAAA, RdType.A]
    out: list[Query] = []
    for i in range(count):
        kind = kinds[i % 10]
        name = f"missing{i}.{APEX}" if i % 10 == 9 else f"h{i}.{APEX}"
        out.append((name, kind))
    return out


def expected(query: Query) -> Outcome:
    name, rdtype = query
    if name.startswith("missing"):
        return ("nxdomain",)
    i = int(name.split(".")[0][1:])
    if rdtype is RdType.A:
        return ("answer", (ipaddress.IPv4Address(f"192.0.{i % 250}.{i // 250 % 250 + 1}"),))
    if rdtype is RdType.TXT:
        return ("answer", (f"v=spf1 ip4:198.51.100.{i % 250}/32 include:_spf.h{i}.{APEX} -all",))
    if rdtype is RdType.MX:
        return ("answer", (MX(10, f"mx{i % 7}.h{i}.{APEX}"),))
    return ("nodata",)


def outcome(result: Answer | BaseException) -> Outcome:
    """An outcome in a form every candidate can reach (TXT strings joined, no TTLs)."""
    if isinstance(result, NXDomain):
        return ("nxdomain",)
    if isinstance(result, NoData):
        return ("nodata",)
    if isinstance(result, BaseException):
        return ("failure", str(result))
    records = tuple(r.joined.decode() if isinstance(r, TXT) else r for r in result.records)
    return ("answer", records)


# ------------------------------------------------------------------------ the candidates


def _negative_ttl(response: dns.message.Message | None) -> int:
    if response is None:
        return 0
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(min(rrset.ttl, rrset[0].minimum))
    return 0


class DnspythonResolver:
    """mailwarden's resolver until this benchmark: dnspython's asyncio stub resolver."""

    def __init__(self, server: tuple[str, int], timeout: float = 2.0) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=False)
        self._resolver.nameservers = [dns.nameserver.Do53Nameserver(*server)]
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout
        self._resolver.use_edns(0, 0, 1232)
        self._resolver.cache = None

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        qname_text = normalize(name)
        qname = dns.name.from_text(qname_text)
        try:
            answer = await self._resolver.resolve(
                qname, rdtype.value, search=False, raise_on_no_answer=True
            )
        except dns.resolver.NXDOMAIN as exc:
            response = (exc.kwargs.get("responses") or {}).get(qname)
            raise NXDomain(qname_text, rdtype, ttl=_negative_ttl(response)) from None
        except dns.resolver.NoAnswer as exc:
            raise NoData(
                qname_text, rdtype, ttl=_negative_ttl(exc.kwargs.get("response"))
            ) from None
        except dns.exception.DNSException as exc:
            raise TempFail(qname_text, rdtype, str(exc)) from None
        rrset = answer.rrset
        assert rrset is not None
        records = tuple(convert_rdata(rdtype, rdata) for rdata in rrset)
        return Answer(qname_text, rdtype, records, int(rrset.ttl))

    def close(self) -> None:
        pass


class CaresResolver:
    """c-ares through aiodns, behind the Resolver interface (no negative TTL: c-ares keeps the
    SOA of a negative answer to itself)."""

    def __init__(self, server: tuple[str, int], timeout: float = 2.0) -> None:
        import aiodns

        self._error = aiodns.error.DNSError
        self._resolver = aiodns.DNSResolver(
            nameservers=[f"{server[0]}:{server[1]}"], timeout=timeout, tries=1
        )

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        import pycares

        qname = normalize(name)
        try:
            result = await self._resolver.query_dns(qname, rdtype.value)
        except self._error as exc:
            code = exc.args[0] if exc.args else None
            if code == pycares.errno.ARES_ENOTFOUND:
                raise NXDomain(qname, rdtype) from None
            if code == pycares.errno.ARES_ENODATA:
                raise NoData(qname, rdtype) from None
            raise TempFail(qname, rdtype, str(exc)) from None
        records: list[Any] = []
        ttl = 0xFFFFFFFF
        for record in result.answer:
            data = record.data
            if rdtype is RdType.A and isinstance(data, pycares.ARecordData):
                records.append(ipaddress.IPv4Address(data.addr))
            elif rdtype is RdType.AAAA and isinstance(data, pycares.AAAARecordData):
                records.append(ipaddress.IPv6Address(data.addr))
            elif rdtype is RdType.TXT and isinstance(data, pycares.TXTRecordData):
                records.append(TXT((data.data,)))
            elif rdtype is RdType.MX and isinstance(data, pycares.MXRecordData):
                records.append(MX(data.priority, normalize(data.exchange)))
            else:
                continue
            ttl = min(ttl, record.ttl)
        if not records:
            raise NoData(qname, rdtype)
        return Answer(qname, rdtype, tuple(records), ttl)

    def close(self) -> None:
        self._resolver._channel.cancel()


class _ProtocolSocket(transport._Socket):
    """The same socket logic read through asyncio's DatagramProtocol and datagram transport
    instead of loop.add_reader on the raw socket (the design the issue sketched)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str, port: int) -> None:
        self.loop, self.address, self.port = loop, address, port
        self.pending = {}
        self.sent = self.in_use = 0
        self.retired = self.closed = False
        self.pid = os.getpid()

    async def open(self) -> None:
        owner = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                owner.take(data, addr)

            def error_received(self, exc: Exception) -> None:
                owner.fail(transport.Refused)

        self.datagrams, _ = await self.loop.create_datagram_endpoint(
            Protocol, remote_addr=(self.address, self.port)
        )

    def send(self, wire: bytes) -> None:
        self.datagrams.sendto(wire)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.datagrams.close()


class ProtocolResolver(SystemResolver):
    """mailwarden's resolver with DatagramProtocol sockets, opened before the run (no
    rotation: its cost is the same either way)."""

    def __init__(self, server: tuple[str, int]) -> None:
        super().__init__([server], timeout=2.0, retries=0, rotate_after=1 << 30)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for server in self.servers:
            state = server._bind(loop)
            for index in range(len(state.sockets)):
                sock = _ProtocolSocket(loop, server.address, server.port)
                await sock.open()
                state.sockets[index] = sock


class CachedResolver(CachingResolver):
    """mailwarden's resolver behind its cache, as every pipeline uses it: the cold query end to
    end (cache miss, in-flight coalescing, the answer stored with its TTL, the metrics)."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.system = SystemResolver([server], timeout=2.0, retries=0)
        super().__init__(self.system)

    def close(self) -> None:
        self.system.close()


class MemoryResolver:
    """Answers at once from memory: the cost of the harness itself."""

    def __init__(self, answers: dict[Query, Answer | DNSError]) -> None:
        self.answers = answers

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        answer = self.answers[(name, rdtype)]
        if isinstance(answer, DNSError):
            raise answer
        return answer

    def close(self) -> None:
        pass


def cares_available() -> bool:
    try:
        import aiodns  # noqa: F401
    except ImportError:
        return False
    return True


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


# ------------------------------------------------------------------------ measuring


def udp_receive_errors() -> int | None:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (Linux)."""
    try:
        lines = Path("/proc/net/snmp").read_text().splitlines()
    except OSError:
        return None
    rows = [line.split() for line in lines if line.startswith("Udp:")]
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return None
    return int(rows[1][rows[0].index("RcvbufErrors")])


async def drive(
    resolver: Any, work: list[Query], in_flight: int
) -> tuple[list[Outcome], float, float]:
    """Ask every question with at most `in_flight` outstanding: (outcomes, CPU s, wall s)."""
    results: list[Outcome] = [()] * len(work)
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(work):
            index = position
            position += 1
            name, rdtype = work[index]
            try:
                results[index] = outcome(await resolver.resolve(name, rdtype))
            except DNSError as exc:
                results[index] = outcome(exc)

    cpu = time.process_time()
    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return results, time.process_time() - cpu, time.perf_counter() - wall


def run_once(
    make: Callable[[], Any],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
    work: list[Query],
    in_flight: int,
) -> tuple[list[Outcome], float, float]:
    async def main() -> tuple[list[Outcome], float, float]:
        resolver = make()
        if hasattr(resolver, "open"):
            await resolver.open()
        try:
            return await drive(resolver, work, in_flight)
        finally:
            resolver.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def memory_answers(work: list[Query]) -> dict[Query, Answer | DNSError]:
    answers: dict[Query, Answer | DNSError] = {}
    for name, rdtype in work:
        want = expected((name, rdtype))
        if want[0] == "nxdomain":
            answers[(name, rdtype)] = NXDomain(name, rdtype, ttl=60)
        elif want[0] == "nodata":
            answers[(name, rdtype)] = NoData(name, rdtype, ttl=60)
        else:
            records = tuple(TXT((r.encode(),)) if isinstance(r, str) else r for r in want[1])
            answers[(name, rdtype)] = Answer(name, rdtype, records, 300)
    return answers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000, help="distinct questions per run")
    parser.add_argument("--in-flight", type=int, default=100, help="concurrent queries")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 queries, 20 in flight, 1 round")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    args = parser.parse_args(argv)
    if args.quick:
        args.queries, args.in_flight, args.rounds = 200, 20, 1
    if nsd_program() is None:
        print("dns_bench: nsd is not installed (Debian package nsd)", file=sys.stderr)
        return 2

    work = queries(args.queries)
    want = [expected(q) for q in work]
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {"asyncio": None}
    if uvloop_factory() is not None:
        loops["uvloop"] = uvloop_factory()
    modes = {"concurrent": args.in_flight, "sequential": 1}

    with tempfile.TemporaryDirectory(prefix="dns-bench-") as folder:
        nsd = start_nsd(Path(folder), {APEX: zone_text(args.queries)})
        try:
            server = ("127.0.0.1", nsd.port)
            answers = memory_answers(work)
            candidates: dict[str, Callable[[], Any]] = {
                "harness": lambda: MemoryResolver(answers),
                "dnspython": lambda: DnspythonResolver(server),
                "mailwarden": lambda: SystemResolver([server], timeout=2.0, retries=0),
                "mw-protocol": lambda: ProtocolResolver(server),
                "mw+cache": lambda: CachedResolver(server),
            }
            if cares_available():
                candidates["c-ares"] = lambda: CaresResolver(server)
            best: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
            drops_before = udp_receive_errors()
            for _ in range(args.rounds):
                for name, make in candidates.items():
                    for loop_name, factory in loops.items():
                        for mode, in_flight in modes.items():
                            got, cpu, wall = run_once(make, factory, work, in_flight)
                            wrong = [
                                (q, g, w) for q, g, w in zip(work, got, want, strict=True) if g != w
                            ]
                            if wrong:
                                raise SystemExit(
                                    f"dns_bench: {name} on {loop_name} ({mode}) got "
                                    f"{len(wrong)} wrong outcomes, first: {wrong[0]}"
                                )
                            cell = best.setdefault(name, {}).setdefault(loop_name, {})
                            figures = {
                                "cpu_us_per_query": cpu / len(work) * 1e6,
                                "queries_per_s": len(work) / wall,
                            }
                            old = cell.get(mode)
                            if old is None:
                                cell[mode] = figures
                            else:
                                old["cpu_us_per_query"] = min(
                                    old["cpu_us_per_query"], figures["cpu_us_per_query"]
                                )
                                old["queries_per_s"] = max(
                                    old["queries_per_s"], figures["queries_per_s"]
                                )
            drops_after = udp_receive_errors()
        finally:
            nsd.stop()

    for cells in best.values():
        for modes_ in cells.values():
            for figures in modes_.values():
                figures["cpu_us_per_query"] = round(figures["cpu_us_per_query"], 1)
                figures["queries_per_s"] = round(figures["queries_per_s"])
    ratios: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    base = best["dnspython"]
    for name, cells in best.items():
        if name in ("harness", "dnspython"):
            continue
        for loop_name, modes_ in cells.items():
            for mode, figures in modes_.items():
                ref = base["asyncio"][mode]
                ratios.setdefault(name, {}).setdefault(loop_name, {})[mode] = {
                    "cpu_vs_dnspython": round(
                        ref["cpu_us_per_query"] / figures["cpu_us_per_query"], 2
                    ),
                    "qps_vs_dnspython": round(figures["queries_per_s"] / ref["queries_per_s"], 2),
                }
    summary: dict[str, Any] = {
        "config": {
            "queries": args.queries,
            "in_flight": args.in_flight,
            "rounds": args.rounds,
            "loops": list(loops),
            "cpus": os.cpu_count(),
        },
        "results": best,
        "ratios_vs_dnspython_on_asyncio": ratios,
        "goal_cpu_us_per_query": GOAL_CPU_US,
        "c_ares": "c-ares" in best,
        "udp_receive_buffer_drops": (
            None if drops_before is None or drops_after is None else drops_after - drops_before
        ),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"cold DNS queries against nsd on loopback: {args.queries} distinct questions, "
        f"{args.in_flight} in flight or one at a time, best of {args.rounds}"
    )
    print(
        f"{'candidate':<12}{'loop':<9}{'mode':<12}{'CPU µs/query':>14}{'queries/s':>11}"
        f"{'CPU vs dnspython':>18}{'q/s vs dnspython':>18}"
    )
    for name, cells in best.items():
        for loop_name, modes_ in cells.items():
            for mode, figures in modes_.items():
                ratio = ratios.get(name, {}).get(loop_name, {}).get(mode)
                cpu_ratio = f"{ratio['cpu_vs_dnspython']:.2f}x" if ratio else "-"
                qps_ratio = f"{ratio['qps_vs_dnspython']:.2f}x" if ratio else "-"
                print(
                    f"{name:<12}{loop_name:<9}{mode:<12}{figures['cpu_us_per_query']:>14.1f}"
                    f"{figures['queries_per_s']:>11.0f}{cpu_ratio:>18}{qps_ratio:>18}"
                )
    if "c-ares" not in best:
        print("c-ares: not measured (pip install aiodns)")
    print(f"goal: at most {GOAL_CPU_US:.0f} µs of CPU per cold query (issue 14)")
    drops = summary["udp_receive_buffer_drops"]
    print(f"UDP receive-buffer drops during the runs: {'unknown' if drops is None else drops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
