"""Which DNS queries a verdict costs, by kind: mailwarden against rspamd on verdict_bench's corpus.

Run from the project root::

    python benchmarks/queries_bench.py                    # 2,000 messages, cold rspamd on 100
    python benchmarks/queries_bench.py --messages 300 --cold-sample 20 --json

The corpus is verdict_bench's (seeded: SPF include chains, DMARC records, rsa and ed25519
DKIM, spoofs, ARC sets). Every question is named and sorted into a kind (SPF record of each
identity, include/redirect, mx, a; DKIM key; ARC key; the Author Domain's ``_dmarc``; the rest
of the DMARC Tree Walk; the Author Domain's existence for np=; PTR; other), per message:

* mailwarden, cold: a new `Pipeline` and an empty cache for every message, over the corpus'
  records in memory (a `StaticResolver` recording every question that reaches it);
* mailwarden, shared: one `Pipeline` (one cache) for the corpus, messages in order;
* mailwarden over the wire: `mailwarden check --batch --workers 1` against nsd through a
  question-logging proxy (one process, one cache: the shared figure, as the server sees it);
* rspamd (Debian package, the SPF, DKIM, DMARC and ARC modules only: rspamd_peer.py) through
  the same proxy, one message in flight so every question belongs to one message: shared
  (one instance for the corpus) and cold (a new instance for each message of a sample, since
  rspamd keeps SPF records and DKIM keys in caches of its own).

rspamd checks SPF for the HELO identity only when MAIL FROM is empty; mailwarden checks it for
every message (RFC 7208 §2.3 recommends it), so that kind is printed apart and the totals are
also given without it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import email.parser
import email.policy
import json
import random
import re
import selectors
import socket
import struct
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.rdatatype

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.dns.nsd
from tests.dns.nsd import nsd_program, start_nsd

import rspamd_peer
import verdict_bench
from mailwarden.dns import Answer, RdType, Resolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.pipeline import build
from verdict_bench import SEED, SETTINGS, Corpus, Item

Question = tuple[str, str]  # (name, type), name in lower case without the final dot

# the kinds, in the order they are printed; HELO_SPF is counted apart (see the docstring)
HELO_SPF = "SPF HELO identity (TXT and below)"
KINDS = [
    "SPF MAIL FROM record (TXT)",
    "SPF include/redirect (TXT)",
    "SPF mx mechanism (MX)",
    "SPF a/mx addresses (A/AAAA)",
    "SPF ptr/exists and macros",
    "DKIM key (TXT)",
    "ARC key (TXT)",
    "DMARC at the Author Domain (TXT)",
    "DMARC Tree Walk above it / other domains (TXT)",
    "DMARC np= existence of the Author Domain (A/AAAA)",
    "iprev / PTR",
    "other",
    HELO_SPF,
]
_SELECTOR = re.compile(r"\bs=\s*([^;\s]+)")
_DOMAIN = re.compile(r"\bd=\s*([^;\s]+)")


@dataclass
class Context:
    """What names mean for one message (or, merged, for a whole run)."""

    helo: set[str] = field(default_factory=set)
    mail_from: set[str] = field(default_factory=set)
    authors: set[str] = field(default_factory=set)
    dkim_keys: set[str] = field(default_factory=set)
    arc_keys: set[str] = field(default_factory=set)

    def merge(self, other: Context) -> None:
        self.helo |= other.helo
        self.mail_from |= other.mail_from
        self.authors |= other.authors
        self.dkim_keys |= other.dkim_keys
        self.arc_keys |= other.arc_keys


def key_name(header: str) -> str | None:
    selector, domain = _SELECTOR.search(header), _DOMAIN.search(header)
    if selector is None or domain is None:
        return None
    return f"{selector.group(1)}._domainkey.{domain.group(1)}".lower().rstrip(".")


def context_of(item: Item) -> Context:
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(item.message)
    authors = set()
    for value in head.get_all("From", []):
        found = re.search(r"@([A-Za-z0-9.\-]+)", str(value))
        if found:
            authors.add(found.group(1).lower())
    dkim = {key_name(str(v)) for v in head.get_all("DKIM-Signature", [])}
    arc = {key_name(str(v)) for v in head.get_all("ARC-Message-Signature", [])}
    arc |= {key_name(str(v)) for v in head.get_all("ARC-Seal", [])}
    return Context(
        helo={item.helo.lower()},
        mail_from={item.mail_from.rpartition("@")[2].lower()},
        authors=authors,
        dkim_keys={k for k in dkim if k},
        arc_keys={k for k in arc if k},
    )


def _under(name: str, domains: Iterable[str]) -> bool:
    return any(name == d or name.endswith("." + d) for d in domains)


def classify(question: Question, context: Context) -> str:
    """The kind of one question, read from its name and type with the message's context."""
    name, rdtype = question
    if rdtype == "PTR":
        return "iprev / PTR"
    if name.startswith("_dmarc."):
        owner = name.removeprefix("_dmarc.")
        if rdtype != "TXT":
            return "other"
        if owner in context.authors:
            return "DMARC at the Author Domain (TXT)"
        return "DMARC Tree Walk above it / other domains (TXT)"
    if "._domainkey." in name and rdtype == "TXT":
        if name in context.arc_keys and name not in context.dkim_keys:
            return "ARC key (TXT)"
        return "DKIM key (TXT)"
    if _under(name, context.helo):  # the HELO name is the more specific (out.d007.example)
        return HELO_SPF
    if rdtype == "TXT":
        if name in context.mail_from:
            return "SPF MAIL FROM record (TXT)"
        return "SPF include/redirect (TXT)"
    if rdtype == "MX":
        return "SPF mx mechanism (MX)"
    if rdtype in ("A", "AAAA"):
        if name in context.authors and name not in context.mail_from:
            return "DMARC np= existence of the Author Domain (A/AAAA)"
        return "SPF a/mx addresses (A/AAAA)"
    return "other"


# -- mailwarden, in memory -----------------------------------------------------------------
class Recording:
    """Every question that reaches the records (below the pipeline's cache)."""

    def __init__(self, inner: Resolver) -> None:
        self.inner = inner
        self.asked: list[Question] = []

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        self.asked.append((name.lower().rstrip("."), str(rdtype)))
        return await self.inner.resolve(name, rdtype)


async def ours_cold(corpus: Corpus) -> list[list[Question]]:
    """Each message with a new pipeline and an empty cache: the questions of each."""
    static = corpus.static()
    out = []
    for item in corpus.items:
        recording = Recording(static)
        checker = build(SETTINGS, CachingResolver(recording), network_checks=False)
        await verdict_bench.check(checker, item)
        await checker.drain()
        out.append(recording.asked)
    return out


async def ours_shared(corpus: Corpus) -> list[list[Question]]:
    """One pipeline (one cache) for the corpus, messages in order: the questions of each."""
    recording = Recording(corpus.static())
    checker = build(SETTINGS, CachingResolver(recording), network_checks=False)
    out = []
    for item in corpus.items:
        start = len(recording.asked)
        await verdict_bench.check(checker, item)
        await checker.drain()
        out.append(recording.asked[start:])
    return out


# -- a proxy that logs every question on its way to the server --------------------------------
class QuestionProxy:
    """UDP and TCP on one loopback port, forwarding to `upstream`, logging each question."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.log: list[Question] = []
        self.truncated = 0
        self._lock = threading.Lock()
        self.udp, self.tcp = _bound_pair()
        self.port = int(self.udp.getsockname()[1])
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _record(self, wire: bytes) -> None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            question: Question = ("<unreadable>", "?")
        else:
            if not query.question:
                return
            rrset = query.question[0]
            question = (
                rrset.name.to_text(omit_final_dot=True).lower(),
                dns.rdatatype.to_text(rrset.rdtype),
            )
        with self._lock:
            self.log.append(question)

    def _serve_udp(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.udp, selectors.EVENT_READ, None)
        while not self._stop.is_set():
            for key, _ in selector.select(0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data, address = sock.recvfrom(65535)
                if key.data is None:  # a client's query: one upstream socket per query
                    self._record(data)
                    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    out.connect(self.upstream)
                    out.send(data)
                    selector.register(out, selectors.EVENT_READ, address)
                else:  # the server's answer
                    if len(data) > 2 and data[2] & 0x02:
                        self.truncated += 1
                    self.udp.sendto(data, key.data)
                    selector.unregister(sock)
                    sock.close()
        selector.close()

    def _serve_tcp(self) -> None:
        self.tcp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.tcp.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._tcp_client, args=(client,), daemon=True).start()

    def _tcp_client(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream, timeout=10) as server:
            while True:
                head = _read(client, 2)
                if head is None:
                    return
                data = _read(client, struct.unpack("!H", head)[0])
                if data is None:
                    return
                self._record(data)
                server.sendall(head + data)
                answer_head = _read(server, 2)
                if answer_head is None:
                    return
                answer = _read(server, struct.unpack("!H", answer_head)[0])
                if answer is None:
                    return
                client.sendall(answer_head + answer)

    def take(self) -> list[Question]:
        """The questions logged since the last call."""
        with self._lock:
            taken, self.log = self.log, []
        return taken

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.udp.close()
        self.tcp.close()


def _bound_pair(attempts: int = 50) -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on one free loopback port."""
    for _ in range(attempts):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:  # the port is free for UDP only: try another
            udp.close()
            tcp.close()
            continue
        tcp.listen(64)
        return udp, tcp
    raise RuntimeError("no loopback port free for both UDP and TCP")


def _read(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@contextlib.contextmanager
def served(corpus: Corpus, folder: Path) -> Iterator[QuestionProxy]:
    """nsd serving the corpus' zone, with the logging proxy in front of it."""
    nsd = start_nsd(folder / "nsd", {"example": corpus.master_file()})
    proxy = QuestionProxy(("127.0.0.1", nsd.port))
    try:
        yield proxy
    finally:
        proxy.close()
        nsd.stop()


def ours_over_dns(corpus: Corpus, proxy: QuestionProxy, folder: Path) -> list[Question]:
    """`mailwarden check --batch --workers 1` through the proxy: the questions it asked."""
    manifest = corpus.write(folder)
    proxy.take()
    verdict_bench.mailwarden_batch(manifest, proxy.port, 1)
    return proxy.take()


def rspamd_one_by_one(
    corpus: Corpus, proxy: QuestionProxy, folder: Path, indices: Sequence[int], *, restart: bool
) -> list[list[Question]]:
    """The questions rspamd asks for each message (one in flight); `restart`: a new instance
    (empty caches) for every message."""
    out: list[list[Question]] = []
    stack = contextlib.ExitStack()
    peer = None
    try:
        for n, i in enumerate(indices):
            if peer is None or restart:
                stack.close()
                stack = contextlib.ExitStack()
                peer = stack.enter_context(
                    rspamd_peer.start_rspamd(
                        folder / f"rspamd{n if restart else ''}",
                        dns=("127.0.0.1", proxy.port),
                        workers=1,
                    )
                )
                proxy.take()  # questions asked while starting belong to no message
            item = corpus.items[i]
            rspamd_peer.check_one(peer, item.message, item.ip, item.helo, item.mail_from)
            out.append(proxy.take())
    finally:
        stack.close()
    return out


# -- tables -------------------------------------------------------------------------------------
def by_kind(per_message: Sequence[list[Question]], contexts: Sequence[Context]) -> dict[str, float]:
    """Questions per message of each kind (contexts: one per message)."""
    counts: collections.Counter[str] = collections.Counter()
    for asked, context in zip(per_message, contexts, strict=True):
        counts.update(classify(q, context) for q in asked)
    n = max(1, len(per_message))
    return {kind: counts[kind] / n for kind in KINDS}


def totals(table: dict[str, float]) -> tuple[float, float]:
    """(all, all but SPF for the HELO identity)."""
    total = sum(table.values())
    return total, total - table[HELO_SPF]


def print_table(columns: dict[str, dict[str, float]], title: str) -> None:
    width = max(len(k) for k in KINDS) + 2
    print(title)
    print(f"  {'kind':<{width}}" + "".join(f"{label:>22}" for label in columns))
    for kind in KINDS:
        cells = "".join(f"{columns[label][kind]:>22.3f}" for label in columns)
        print(f"  {kind:<{width}}{cells}")
    all_row = "".join(f"{totals(columns[label])[0]:>22.3f}" for label in columns)
    but_row = "".join(f"{totals(columns[label])[1]:>22.3f}" for label in columns)
    print(f"  {'total':<{width}}{all_row}")
    print(f"  {'total without SPF HELO':<{width}}{but_row}")


def compare(
    ours: Sequence[list[Question]], theirs: Sequence[list[Question]], contexts: Sequence[Context]
) -> dict[str, Any]:
    """Message by message, SPF for HELO aside: how often mailwarden asks more, as many, fewer
    questions than rspamd, and by how much of each kind when it asks more of that kind."""
    more = equal = fewer = 0
    extra: collections.Counter[str] = collections.Counter()
    for mine, peer, context in zip(ours, theirs, contexts, strict=True):
        a = collections.Counter(classify(q, context) for q in mine)
        b = collections.Counter(classify(q, context) for q in peer)
        a.pop(HELO_SPF, None)
        b.pop(HELO_SPF, None)
        total_a, total_b = a.total(), b.total()
        more += total_a > total_b
        equal += total_a == total_b
        fewer += total_a < total_b
        extra.update(a - b)
    return {"more": more, "equal": equal, "fewer": fewer, "kinds_asked_more": dict(extra)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--domains", type=int, default=40)
    parser.add_argument(
        "--cold-sample", type=int, default=100,
        help="messages rspamd checks with a new instance each (1 to 2 s each)",
    )  # fmt: skip
    parser.add_argument("--no-rspamd", action="store_true", help="mailwarden only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    corpus = Corpus(args.domains, args.messages)
    contexts = [context_of(item) for item in corpus.items]
    merged = Context()
    for context in contexts:
        merged.merge(context)
    n = len(corpus.items)
    # seeded, not every k-th message: the corpus makes every fifth message a spoof
    sample = sorted(random.Random(SEED).sample(range(n), min(n, max(0, args.cold_sample))))
    sample_contexts = [contexts[i] for i in sample]

    cold = asyncio.run(ours_cold(corpus))
    shared = asyncio.run(ours_shared(corpus))
    report: dict[str, Any] = {
        "messages": n,
        "domains": args.domains,
        "cold": {"mailwarden": by_kind(cold, contexts)},
        "cold_sample": {
            "messages": len(sample),
            "spoofs": sum(corpus.spoofs[i] for i in sample),
            "mailwarden": by_kind([cold[i] for i in sample], sample_contexts),
        },
        "shared": {"mailwarden": by_kind(shared, contexts)},
    }
    if args.no_rspamd:
        report["rspamd"] = "not asked (--no-rspamd)"
    elif nsd_program() is None:
        report["rspamd"] = "skipped: nsd is not installed (Debian package nsd)"
    elif rspamd_peer.rspamd_program() is None:
        report["rspamd"] = "skipped: rspamd is not installed (Debian package rspamd)"
    else:
        report["rspamd"] = rspamd_peer.rspamd_version()
        with tempfile.TemporaryDirectory(prefix="queries-bench-") as name:
            folder = Path(name)
            with served(corpus, folder) as proxy:
                wire = ours_over_dns(corpus, proxy, folder)
                report["shared"]["mailwarden over DNS"] = {
                    kind: count / n for kind, count in by_kind([wire], [merged]).items()
                }
                theirs = rspamd_one_by_one(corpus, proxy, folder, range(n), restart=False)
                report["shared"]["rspamd"] = by_kind(theirs, contexts)
                theirs_cold = rspamd_one_by_one(corpus, proxy, folder, sample, restart=True)
                report["cold_sample"]["rspamd"] = by_kind(theirs_cold, sample_contexts)
                report["cold_sample"]["per_message"] = compare(
                    [cold[i] for i in sample], theirs_cold, sample_contexts
                )
                examples: dict[str, Any] = {}
                for j, i in enumerate(sample):
                    label = "spoof" if corpus.spoofs[i] else "aligned"
                    examples.setdefault(
                        label, {"message": i, "mailwarden": cold[i], "rspamd": theirs_cold[j]}
                    )
                report["cold_sample"]["examples"] = examples
                report["truncated_answers"] = proxy.truncated
    if args.json:
        print(json.dumps(report))
        return 0
    print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(
        f"DNS questions per message by kind, {report['messages']} messages "
        f"({report['domains']} domains); rspamd: {report['rspamd']}"
    )
    print_table(report["cold"], "cold: a new pipeline and an empty cache for every message")
    sample = report["cold_sample"]
    columns = {k: v for k, v in sample.items() if k in ("mailwarden", "rspamd")}
    print_table(
        columns,
        f"cold, on a sample of {sample['messages']} messages ({sample['spoofs']} spoofs), "
        "rspamd restarted for each",
    )
    if "per_message" in sample:
        each = sample["per_message"]
        print(
            f"  message by message (SPF HELO aside), mailwarden asks more than rspamd for "
            f"{each['more']}, as many for {each['equal']}, fewer for {each['fewer']}; "
            f"kinds it asks more of: {each['kinds_asked_more'] or 'none'}"
        )
        for label, example in sample["examples"].items():
            for side in ("mailwarden", "rspamd"):
                asked = ", ".join(f"{name} {rdtype}" for name, rdtype in example[side])
                print(f"  {label} message {example['message']}, {side}: {asked}")
    print_table(report["shared"], "shared: one instance (one cache) for the corpus, in order")
    if report.get("truncated_answers"):
        print(f"  ({report['truncated_answers']} answers came truncated over UDP)")


if __name__ == "__main__":
    sys.exit(main())
