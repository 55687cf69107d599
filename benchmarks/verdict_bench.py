"""Full verdicts per second: mailwarden against the Python stack (pyspf + dkimpy + authheaders).

Run from the project root::

    python benchmarks/verdict_bench.py              # 300 messages
    python benchmarks/verdict_bench.py --quick --json

A seeded generator builds a corpus and the DNS it needs: sender domains whose SPF policies reach
providers through include chains, DKIM keys (half rsa-2048, half ed25519), DMARC records
(reject, quarantine, none), and messages of about 10 KB median size (log-normal, 2 to 40 KB)
signed by their domain; a fifth of them are spoofs (From a DMARC p=reject domain, signed by
another), and one in seven carries an ARC set (rsa-2048) added by a forwarding list. Both
implementations read the same records: mailwarden through a `StaticResolver`, the Python
stack through pyspf's `DNSLookup` and a `dnsfunc` for dkimpy and authheaders.

Both compute SPF (MAIL FROM), DKIM, ARC and DMARC for every message (authheaders'
`authenticate_message(spf=True, dkim=True, arc=True, dmarc=True)`; mailwarden's
`Pipeline.check` with the network checks off, since the peer has none). The script first
checks that both reach the same SPF, DKIM, DMARC and ARC results, then times:

* warm: one `Pipeline` for the corpus (DNS answers, parsed SPF policies and DKIM keys
  cached), messages checked concurrently as `mailwarden check --batch` does;
* cold: a new `Pipeline` and an empty cache for every message.

The Python stack keeps no cache between messages: its warm figure is its cold figure. It
is timed with its Public Suffix List read once (the primary peer, what a user who cares about
speed does); authheaders as used naively, rebuilding the list on every DMARC lookup, is a
footnote timed on at most 50 messages.

The DNS queries one message costs with an empty cache are counted (queries_bench.py names
every one, sorts them by kind and sets rspamd's beside them: on 2,000 messages, 7.34 for
mailwarden, 6.34 without SPF for the HELO identity, which rspamd does not check when MAIL FROM
is given; rspamd restarted for each of 100 messages asks 8.14). Then, against the same zone
served by nsd on loopback (unless --quick or --no-dns-peers), rounds interleaved, medians
kept, the load average printed:

* `mailwarden check --batch --workers 1` and `--workers N` (N: --workers, default the number
  of CPUs), wall time of the command, so its start-up counts (also shown without it);
* the Python stack over the same nsd (dnspython, its default: no cache between messages), 16
  messages in flight in threads, its Public Suffix List loaded once: the peer of the issue's
  table (the in-process figure above answers from the static zone, paying no DNS at all);
* rspamd with 1 and N workers when the Debian package `rspamd` is installed (a private
  configuration on loopback ports, only its SPF, DKIM, DMARC and ARC modules: see
  rspamd_peer.py), 16 messages in flight through /checkv2; its results must agree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.dns.nsd
from tests.dns.nsd import nsd_program, start_nsd

import rspamd_peer
from mailwarden.arc import header_block, seal
from mailwarden.cli.workers import default_workers
from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import CountingResolver, StaticResolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.pipeline import Pipeline, build
from mailwarden.settings import GatewaySettings, Settings
from spf_bench import PySPFDNS, Zone, load_pyspf, pyspf_dns

SEED = 8601
GOAL = 5.0
NAIVE_SAMPLE = 50
PEER_QUIRK = (
    "authheaders takes the organizational domain of a name under a TLD missing from the "
    "Public Suffix List to be the TLD itself (d003.example -> example), so every spoof between "
    "two .example domains aligns and passes DMARC; RFC 7489 §3.2 (the implicit '*' rule) makes "
    "d003.example its own organizational domain, and the spoofs fail"
)
AUTHSERV = "mx.bench.example"
SETTINGS = Settings(gateway=GatewaySettings(hostname=AUTHSERV))
WORDS = [
    "mail",
    "gateway",
    "policy",
    "domain",
    "record",
    "signature",
    "header",
    "body",
    "alignment",
    "report",
]


@dataclass(frozen=True)
class Item:
    message: bytes
    ip: str
    helo: str
    mail_from: str


class Corpus:
    def __init__(self, n_domains: int, n_messages: int, seed: int = SEED) -> None:
        rng = random.Random(seed)
        self.zone: Zone = {}
        self.items: list[Item] = []
        self.spoofs: list[bool] = []
        keys: dict[str, Any] = {}
        providers = [f"prov{p}.example" for p in range(4)]
        for p, provider in enumerate(providers):
            self.txt(f"_spf.{provider}", f"v=spf1 ip4:10.{p}.0.0/16 include:_spf2.{provider} ~all")
            self.txt(f"_spf2.{provider}", f"v=spf1 ip4:10.{p + 100}.0.0/16 ?all")
        list_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.txt("arc._domainkey.list.example", key_record(list_key))
        domains = []
        for d in range(n_domains):
            domain = f"d{d:03d}.example"
            provider = providers[d % len(providers)]
            self.txt(domain, f"v=spf1 mx include:_spf.{provider} -all")
            self.add(domain, "MX", (10, f"mx.{domain}"))
            self.add(f"mx.{domain}", "A", f"192.0.{d % 250}.25")
            policy = ("reject", "quarantine", "none")[d % 3]
            self.txt(f"_dmarc.{domain}", f"v=DMARC1; p={policy}; rua=mailto:agg@{domain}")
            key: Any = (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                if d % 2 == 0
                else ed25519.Ed25519PrivateKey.generate()
            )
            keys[domain] = key
            self.txt(f"sel._domainkey.{domain}", key_record(key))
            domains.append((domain, d % len(providers)))
        for m in range(n_messages):
            domain, p = domains[rng.randrange(len(domains))]
            spoof = m % 5 == 4
            author = (
                domains[(domains.index((domain, p)) + 3) % len(domains)][0] if spoof else domain
            )
            size = min(40_000, max(2_000, int(rng.lognormvariate(math.log(10_000), 0.5))))
            body = self.body(rng, size)
            header = (
                f"From: Sender <news@{author}>\r\nTo: someone@b.example\r\n"
                f"Subject: message {m}\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
                f"Message-ID: <{m}@{domain}>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            ).encode()
            message = header + body
            signature = sign(message, domain, "sel", keys[domain], timestamp=1_790_000_000)
            ip = f"10.{p}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            message = signature + message
            if m % 7 == 3:  # forwarded by a list that adds an ARC set
                sealed = seal(
                    message,
                    domain="list.example",
                    selector="arc",
                    private_key=list_key,
                    authserv_id="list.example",
                    auth_results=f"dkim=pass header.d={domain}; dmarc=pass header.from={author}",
                    chain_validation="none",
                    timestamp=1_790_000_000,
                )
                message = header_block(sealed) + message
            self.items.append(Item(message, ip, f"out.{domain}", f"bounce@{domain}"))
            self.spoofs.append(spoof)

    def add(self, name: str, rdtype: str, value: Any) -> None:
        self.zone.setdefault((name, rdtype), []).append(value)

    def txt(self, name: str, text: str) -> None:
        self.add(name, "TXT", tuple(text[i : i + 255] for i in range(0, len(text), 255)))

    @staticmethod
    def body(rng: random.Random, size: int) -> bytes:
        lines = []
        total = 0
        while total < size:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 14)))
            lines.append(line)
            total += len(line) + 2
        return ("\r\n".join(lines) + "\r\n").encode()

    def static(self) -> StaticResolver:
        resolver = StaticResolver()
        for (name, rdtype), values in self.zone.items():
            for value in values:
                resolver.add(name, rdtype, list(value) if rdtype == "TXT" else value)
        return resolver

    def dnsfunc(self) -> Any:
        """dkimpy's and authheaders' `dnsfunc(name, timeout=5) -> bytes` over the zone."""
        texts = {
            name: b"".join(s.encode() for s in values[0])
            for (name, rdtype), values in self.zone.items()
            if rdtype == "TXT"
        }

        def lookup(name: bytes | str, timeout: int = 5) -> bytes | str | None:
            # dkimpy asks with bytes and wants bytes; authheaders' DMARC asks with text
            key = (name.decode() if isinstance(name, bytes) else name).lower().rstrip(".")
            found = texts.get(key)
            if found is None or isinstance(name, bytes):
                return found
            return found.decode()

        return lookup

    def master_file(self) -> str:
        """The zone as one master file for the apex "example" (served by nsd)."""
        lines = [
            "$ORIGIN example.",
            "$TTL 300",
            "@ IN SOA ns.example. hostmaster.example. 1 3600 600 86400 300",
            "@ IN NS ns.example.",
            "ns IN A 127.0.0.1",
        ]
        for (name, rdtype), values in self.zone.items():
            for value in values:
                if rdtype == "TXT":
                    value = " ".join(f'"{part}"' for part in value)
                elif rdtype == "MX":
                    value = f"{value[0]} {value[1]}."
                lines.append(f"{name}. IN {rdtype} {value}")
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> Path:
        """Messages as files and a `check --batch` manifest; returns the manifest."""
        manifest = []
        for i, item in enumerate(self.items):
            (folder / f"m{i}.eml").write_bytes(item.message)
            line = {"file": f"m{i}.eml", "ip": item.ip, "helo": item.helo}
            manifest.append(json.dumps({**line, "mail_from": item.mail_from}))
        path = folder / "manifest.jsonl"
        path.write_text("\n".join(manifest) + "\n")
        return path


def summary(verdict: Any) -> tuple[str, str, str, str]:
    dkim = verdict.dkim[0].result.value if verdict.dkim else "none"
    arc = verdict.arc.result.value if verdict.arc is not None else "none"
    return verdict.spf.result.value, dkim, verdict.dmarc.result.value, arc


async def mailwarden_warm(corpus: Corpus, static: StaticResolver) -> tuple[float, list[Any]]:
    checker = build(SETTINGS, CachingResolver(static), network_checks=False)
    for item in corpus.items[:50]:  # warm up: caches filled, policies compiled
        await check(checker, item)
    sem = asyncio.Semaphore(32)

    async def one(item: Item) -> Any:
        async with sem:
            return await check(checker, item)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(item) for item in corpus.items))
    elapsed = time.perf_counter() - started
    await checker.drain()
    return elapsed, results


async def mailwarden_cold(corpus: Corpus, static: StaticResolver) -> tuple[float, list[Any]]:
    results = []
    started = time.perf_counter()
    for item in corpus.items:
        checker = build(SETTINGS, CachingResolver(static), network_checks=False)
        results.append(await check(checker, item))
        await checker.drain()
    return time.perf_counter() - started, results


async def queries_per_message(corpus: Corpus, static: StaticResolver) -> float:
    """DNS queries one message costs with an empty cache (what reaches the server)."""
    total = 0
    for item in corpus.items:
        counter = CountingResolver(static)
        checker = build(SETTINGS, CachingResolver(counter), network_checks=False)
        await check(checker, item)
        await checker.drain()
        total += counter.queries
    return total / len(corpus.items)


async def check(checker: Pipeline, item: Item) -> Any:
    return await checker.check(item.message, ip=item.ip, helo=item.helo, mail_from=item.mail_from)


@contextlib.contextmanager
def cached_psl(enabled: bool) -> Iterator[None]:
    """authheaders rebuilds the Public Suffix List on every DMARC lookup (about 0.3 s each);
    with `enabled`, the list is read once and every lookup uses it (what a user who cares
    about speed does; not an authheaders option: its function is replaced here)."""
    import importlib.resources

    import authheaders
    from authheaders import dmarc_lookup

    saved = dmarc_lookup.get_org_domain
    if enabled:  # both modules hold a reference
        try:
            from authheaders.findpsl import location  # the system's list, when configured
        except ModuleNotFoundError:
            location = importlib.resources.files("authheaders") / "public_suffix_list.txt"
        with location.open() if hasattr(location, "open") else open(location) as lines:
            psl = dmarc_lookup.PublicSuffixList(lines)

        def once(domain: str) -> Any:
            return psl.get_public_suffix(domain)

        dmarc_lookup.get_org_domain = authheaders.get_org_domain = once
    try:
        yield
    finally:
        dmarc_lookup.get_org_domain = authheaders.get_org_domain = saved


def python_stack(
    corpus: Corpus, *, memoise_psl: bool = False
) -> tuple[float, list[tuple[str, str, str, str]]]:
    import authheaders

    spf = load_pyspf()
    dnsfunc = corpus.dnsfunc()
    out = []
    with pyspf_dns(spf, PySPFDNS(corpus.zone)), cached_psl(memoise_psl):
        started = time.perf_counter()
        for item in corpus.items:
            header = authheaders.authenticate_message(
                item.message,
                AUTHSERV,
                spf=True,
                dkim=True,
                arc=True,
                dmarc=True,
                ip=item.ip,
                mail_from=item.mail_from,
                helo=item.helo,
                dnsfunc=dnsfunc,
            )
            out.append(parse_peer(header))
        return time.perf_counter() - started, out


def python_stack_over_dns(
    corpus: Corpus, dns_port: int, in_flight: int = 16
) -> tuple[float, list[tuple[str, str, str, str]]]:
    """The Python stack as the issue's table ran it: its own DNS (dnspython, no cache between
    messages, as pyspf, dkimpy and authheaders do by default) against the nsd on loopback,
    `in_flight` messages at a time in threads, the Public Suffix List loaded once."""
    import authheaders
    import dns.resolver

    load_pyspf()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_port
    saved = dns.resolver.default_resolver
    dns.resolver.default_resolver = resolver  # what pyspf, dkimpy and authheaders ask

    def one(item: Item) -> tuple[str, str, str, str]:
        header = authheaders.authenticate_message(
            item.message, AUTHSERV, spf=True, dkim=True, arc=True, dmarc=True,
            ip=item.ip, mail_from=item.mail_from, helo=item.helo,
        )  # fmt: skip
        return parse_peer(header)

    try:
        with cached_psl(True), warnings.catch_warnings(), ThreadPoolExecutor(in_flight) as pool:
            warnings.simplefilter("ignore", DeprecationWarning)  # pyspf calls resolver.query()
            started = time.perf_counter()
            out = list(pool.map(one, corpus.items))
            return time.perf_counter() - started, out
    finally:
        dns.resolver.default_resolver = saved


def parse_peer(header: str) -> tuple[str, str, str, str]:
    found = {"spf": "none", "dkim": "none", "dmarc": "none", "arc": "none"}
    for clause in header.replace("\r\n", " ").split(";")[1:]:
        method, _, rest = clause.strip().partition("=")
        if method in found:
            found[method] = rest.split()[0] if rest else "none"
    return found["spf"], found["dkim"], found["dmarc"], found["arc"]


def mailwarden_batch(manifest: Path, dns_port: int, workers: int) -> tuple[float, list[Any]]:
    """`mailwarden check --batch --workers N` against nsd: wall seconds and its verdicts."""
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [
        sys.executable, "-m", "mailwarden", "check", "--batch", str(manifest), "--json",
        "--workers", str(workers), "--dns-server", f"127.0.0.1:{dns_port}",
        "--no-network-checks", "--hostname", AUTHSERV,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, check=False, timeout=3600)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"mailwarden check --batch: exit {done.returncode}: {done.stderr!r}")
    return elapsed, [json.loads(line) for line in done.stdout.splitlines()]


def batch_summary(line: dict[str, Any]) -> tuple[str, str, str, str]:
    dkim = line["dkim"][0]["result"] if line.get("dkim") else "none"
    arc = line["arc"]["result"] if line.get("arc") else "none"
    return line["spf"]["result"], dkim, line["dmarc"]["result"], arc


def rspamd_run(peer: Any, corpus: Corpus, in_flight: int = 16) -> tuple[float, list[Any]]:
    """Every message through rspamd's /checkv2, `in_flight` at a time: wall seconds, results."""
    import aiohttp

    async def main() -> tuple[float, list[Any]]:
        limit = asyncio.Semaphore(in_flight)
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(item: Item) -> Any:
                async with limit:
                    headers = rspamd_peer.headers(item.ip, item.helo, item.mail_from)
                    async with session.post(peer.url, data=item.message, headers=headers) as r:
                        return rspamd_peer.results(await r.json(content_type=None))

            started = time.perf_counter()
            out = await asyncio.gather(*(one(item) for item in corpus.items))
            return time.perf_counter() - started, list(out)

    return asyncio.run(main())


def over_dns(
    corpus: Corpus, workers: int, rounds: int, static_peer: list[Any] | None = None
) -> dict[str, Any]:
    """Against nsd on loopback, rounds interleaved (medians): `check --batch` with 1 and with
    `workers` processes, and rspamd with 1 and `workers` workers when it is installed."""
    if nsd_program() is None:
        return {"skipped": "nsd is not installed (Debian package nsd)"}
    n = len(corpus.items)
    with tempfile.TemporaryDirectory(prefix="verdict-bench-") as name:
        folder = Path(name)
        manifest = corpus.write(folder)
        nsd = start_nsd(folder / "nsd", {"example": corpus.master_file()})
        try:
            empty = folder / "empty.jsonl"
            empty.write_text("")
            subjects: dict[str, Any] = {
                "mailwarden_batch_1": lambda: mailwarden_batch(manifest, nsd.port, 1),
                f"mailwarden_batch_{workers}": lambda: mailwarden_batch(
                    manifest, nsd.port, workers
                ),
            }
            subjects["python_stack_dns"] = functools.partial(
                python_stack_over_dns, corpus, nsd.port
            )
            startup = statistics.median(
                mailwarden_batch(empty, nsd.port, 1)[0] for _ in range(max(1, rounds))
            )
            peers: list[Any] = []
            rspamd = "rspamd is not installed (Debian package rspamd)"
            if rspamd_peer.rspamd_program() is not None:
                rspamd = rspamd_peer.rspamd_version()
                for count in sorted({1, workers}):
                    peer = rspamd_peer.start_rspamd(
                        folder / f"rspamd{count}", dns=("127.0.0.1", nsd.port), workers=count
                    )
                    peers.append(peer)
                    started = peer.__enter__()
                    subjects[f"rspamd_{count}"] = functools.partial(rspamd_run, started, corpus)
            try:
                times: dict[str, list[float]] = {name: [] for name in subjects}
                verdicts: dict[str, list[Any]] = {}
                for _ in range(rounds):
                    for label, run in subjects.items():
                        elapsed, out = run()
                        times[label].append(elapsed)
                        verdicts[label] = out
            finally:
                for peer in peers:
                    peer.__exit__(None, None, None)
        finally:
            nsd.stop()
    rates = {label: n / statistics.median(values) for label, values in times.items()}
    ours = [batch_summary(line) for line in verdicts[f"mailwarden_batch_{workers}"]]
    same_order = [batch_summary(line) for line in verdicts["mailwarden_batch_1"]] == ours
    report: dict[str, Any] = {
        "messages": n,
        "workers": workers,
        "rounds": rounds,
        "load_average": os.getloadavg(),
        "rspamd": rspamd,
        "mailwarden_startup_seconds": startup,
        "per_second": rates,
        "per_second_without_startup": {
            label: n / max(1e-9, statistics.median(values) - startup)
            for label, values in times.items()
            if label.startswith("mailwarden")
        },
        "workers_agree_with_one_process": same_order,
    }
    if f"rspamd_{workers}" in rates:
        theirs = verdicts[f"rspamd_{workers}"]
        report["agreement_with_rspamd"] = sum(
            1 for a, b in zip(ours, theirs, strict=True) if a == b
        )
        report["ratio_vs_rspamd_same_workers"] = (
            rates[f"mailwarden_batch_{workers}"] / rates[f"rspamd_{workers}"]
        )
        report["ratio_vs_rspamd_1"] = rates["mailwarden_batch_1"] / rates["rspamd_1"]
    if static_peer is not None:  # its own DNS reached what the static zone gave it
        report["python_stack_dns_agrees"] = verdicts["python_stack_dns"] == static_peer
    report["ratio_vs_python_stack_dns"] = (
        rates[f"mailwarden_batch_{workers}"] / rates["python_stack_dns"]
    )
    return report


def timed(run: Any) -> float:
    gc.collect()
    gc.disable()
    try:
        return float(run())
    finally:
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--domains", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument(
        "--dns-peers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the run against nsd: check --batch with --workers, rspamd (default: on, "
        "off with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n_messages, n_domains, repeat = (
        (4, 2, 1) if args.quick else (args.messages, args.domains, args.repeat)
    )
    dns_peers = (not args.quick) if args.dns_peers is None else args.dns_peers
    corpus = Corpus(n_domains, n_messages)
    static = corpus.static()

    _, warm_results = asyncio.run(mailwarden_warm(corpus, static))
    _, peer_results = python_stack(corpus, memoise_psl=True)  # same answers, sooner
    ours = [summary(v) for v in warm_results]
    agree = sum(1 for a, b in zip(ours, peer_results, strict=True) if a == b)
    explained = 0
    differences = []
    for i, (a, b) in enumerate(zip(ours, peer_results, strict=True)):
        if a == b:
            continue
        if (
            a[:2] == b[:2]
            and a[3] == b[3]
            and (a[2], b[2]) == ("fail", "pass")
            and corpus.spoofs[i]
        ):
            explained += 1  # see PEER_QUIRK
            continue
        differences.append({"message": i, "mailwarden": a, "python_stack": b})

    # rounds interleaved (ours, theirs, ours...), the best of each kept: load from other
    # processes then weighs on every subject alike
    runs = {
        "warm": lambda: asyncio.run(mailwarden_warm(corpus, static))[0],
        "cold": lambda: asyncio.run(mailwarden_cold(corpus, static))[0],
        "peer_psl": lambda: python_stack(corpus, memoise_psl=True)[0],
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            times[name].append(timed(run))
    warm, cold, peer_psl = (min(times[name]) for name in ("warm", "cold", "peer_psl"))

    def best(run: Any) -> float:
        return min(timed(run) for _ in range(repeat))

    # the naive peer is slow (about 3/s): timed on at most NAIVE_SAMPLE messages
    sample = Corpus.__new__(Corpus)
    sample.zone, sample.items = corpus.zone, corpus.items[:NAIVE_SAMPLE]
    naive_n = len(sample.items)
    peer = best(lambda: python_stack(sample)[0]) * n_messages / naive_n
    sizes = sorted(len(item.message) for item in corpus.items)
    report: dict[str, Any] = {
        "messages": n_messages,
        "median_size": sizes[len(sizes) // 2],
        "agreement": f"{agree}/{n_messages}",
        "explained_differences": explained,
        "unexplained_differences": differences[:5],
        "dns_queries_per_message": asyncio.run(queries_per_message(corpus, static)),
        "per_second": {
            "mailwarden_warm": n_messages / warm,
            "mailwarden_cold": n_messages / cold,
            "python_stack_memoised_psl": n_messages / peer_psl,
            "python_stack": n_messages / peer,
        },
        # the primary peer: the Python stack with its Public Suffix List loaded once
        "ratio_warm": peer_psl / warm,
        "ratio_cold": peer_psl / cold,
        # footnote: authheaders as used naively rebuilds the list on every DMARC lookup
        "ratio_warm_vs_naive": peer / warm,
        "ratio_cold_vs_naive": peer / cold,
        "goal": GOAL,
        "naive_sample": naive_n,
        "load_average": os.getloadavg(),
    }
    if dns_peers:
        report["over_dns"] = over_dns(
            corpus, max(1, args.workers), max(1, repeat), static_peer=peer_results
        )
    if args.json:
        print(json.dumps(report))
        return 0
    print_report(report, n_domains, repeat)
    return 0


def print_report(report: dict[str, Any], n_domains: int, repeat: int) -> None:
    n_messages = report["messages"]
    load = ", ".join(f"{x:.2f}" for x in report["load_average"])
    print(
        f"verdicts: {n_messages} messages (median {report['median_size']:,} bytes), "
        f"{n_domains} domains, best of {repeat} interleaved rounds, load average {load}"
    )
    differences = report["unexplained_differences"]
    explained = report["explained_differences"]
    print(
        f"agreement on (spf, dkim, dmarc, arc): {report['agreement']}; {explained} differ by a "
        f"known peer quirk, {len(differences)} unexplained"
    )
    if explained:
        print(f"  quirk: {PEER_QUIRK}")
    for difference in differences[:5]:
        print(f"  differs: {difference}")
    print(f"DNS queries per message, empty cache: {report['dns_queries_per_message']:.2f}")
    rates = report["per_second"]
    print(f"{'mode':<34} {'mailwarden':>11} {'python stack':>13} {'ratio':>7}")
    print(
        f"{'warm (shared caches, concurrent)':<34} {rates['mailwarden_warm']:>11,.0f} "
        f"{rates['python_stack_memoised_psl']:>13,.0f} {report['ratio_warm']:>6.2f}x"
    )
    print(
        f"{'cold (fresh caches per message)':<34} {rates['mailwarden_cold']:>11,.0f} "
        f"{rates['python_stack_memoised_psl']:>13,.0f} {report['ratio_cold']:>6.2f}x"
    )
    print(
        f"python stack: its Public Suffix List loaded once (primary peer); "
        f"goal >= {GOAL:g}x: warm {report['ratio_warm']:.1f}x, cold {report['ratio_cold']:.1f}x"
    )
    print(
        f"* authheaders used naively (the list rebuilt on every DMARC lookup; timed on "
        f"{report['naive_sample']} messages): "
        f"{rates['python_stack']:,.0f}/s; mailwarden {report['ratio_warm_vs_naive']:.0f}x (warm),"
        f" {report['ratio_cold_vs_naive']:.0f}x (cold)"
    )
    dns = report.get("over_dns")
    if not dns:
        return
    if "skipped" in dns:
        print(f"over DNS: skipped ({dns['skipped']})")
        return
    load = ", ".join(f"{x:.2f}" for x in dns["load_average"])
    print(
        f"over DNS (nsd on loopback), {dns['messages']} messages, median of {dns['rounds']} "
        f"interleaved rounds, load average {load}:"
    )
    print(f"  rspamd: {dns['rspamd']}")
    startup = dns["mailwarden_startup_seconds"]
    for label, rate in dns["per_second"].items():
        extra = dns["per_second_without_startup"].get(label)
        note = f" ({extra:,.0f}/s without the {startup:.1f} s start-up)" if extra else ""
        print(f"  {label:<24} {rate:>8,.0f}/s{note}")
    workers = dns["workers"]
    same = dns["workers_agree_with_one_process"]
    print(f"  --workers {workers} gives the same verdicts as 1: {same}")
    if "ratio_vs_rspamd_same_workers" in dns:
        print(
            f"  mailwarden --workers {workers} / rspamd {workers} workers: "
            f"{dns['ratio_vs_rspamd_same_workers']:.2f}x (goal >= 2x); 1 / 1: "
            f"{dns['ratio_vs_rspamd_1']:.2f}x; agreement with rspamd on (spf, dkim, dmarc, arc): "
            f"{dns['agreement_with_rspamd']}/{dns['messages']}"
        )
    python = report["per_second"]["python_stack_memoised_psl"]
    ours = dns["per_second"][f"mailwarden_batch_{workers}"]
    print(
        f"  mailwarden --workers {workers} / Python stack over the same DNS (16 in flight, as "
        f"the issue measured it): {dns['ratio_vs_python_stack_dns']:.2f}x (goal >= 5x); / the "
        f"Python stack in one process on the static zone (no DNS cost): {ours / python:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
