"""Verdicts per second through the HTTP API (`POST /v1/check`) against `mailwarden check
--batch` on the same corpus.

Run from the project root (nsd from Debian serves the DNS; without it, both read the zone file
through --dns-zone)::

    python benchmarks/http_bench.py                 # 300 messages, 50 clients
    python benchmarks/http_bench.py --quick --json

The corpus is verdict_bench's (sender domains with SPF include chains, DKIM keys rsa-2048 and
ed25519, DMARC policies, ARC sets, spoofs; messages of about 10 KB). Its records are one zone
served by a private nsd on loopback (tests/dns/nsd.py), and both sides are real programs with
the same configuration file and `--dns-server`:

* batch: `mailwarden check --batch MANIFEST --json` (one process, 32 messages in flight),
  timed from its first verdict to its last, so its start-up (imports, settings, the
  pipeline) is left out, in its favour; the whole run is reported too;
* http: `mailwarden http` in its own process, `--clients` concurrent keep-alive connections
  over real sockets posting every message (`message/rfc822`, with the bearer token); the
  server is fresh for each round, so its DNS cache starts as cold as the batch's. Timed the
  same way, first verdict to last (and from the first request, reported too).

First, the verdicts of both are compared message by message (they must be equal: one
pipeline). The figure printed is the best of `--repeat` rounds, and the ratio is HTTP over
batch: what answering over HTTP costs against checking files in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # for tests.dns.nsd
from tests.dns.nsd import NSD, nsd_program, start_nsd  # noqa: E402

from verdict_bench import AUTHSERV, Corpus  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
CONFIG = f"""
[gateway]
hostname = "{AUTHSERV}"
[dnsbl]
use = []
[http]
token = "{TOKEN}"
"""


def master_file(corpus: Corpus) -> str:
    """The corpus's records as one RFC 1035 zone, `example.`."""
    lines = [
        "$ORIGIN example.",
        "$TTL 3600",
        "@ IN SOA ns.example. hostmaster.example. 1 3600 600 86400 300",
        "@ IN NS ns.example.",
        "ns IN A 127.0.0.1",
    ]
    for (name, rdtype), values in corpus.zone.items():
        for value in values:
            if rdtype == "TXT":
                data = " ".join(f'"{part}"' for part in value)
            elif rdtype == "MX":
                data = f"{value[0]} {value[1]}."
            else:
                data = str(value)
            lines.append(f"{name}. IN {rdtype} {data}")
    return "\n".join(lines) + "\n"


def mailwarden(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailwarden", *args]


def write_corpus(corpus: Corpus, folder: Path) -> tuple[Path, list[str]]:
    """The messages as files with a manifest for --batch; the HTTP queries, in the same order."""
    lines, queries = [], []
    for number, item in enumerate(corpus.items):
        name = f"m{number:05d}.eml"
        (folder / name).write_bytes(item.message)
        lines.append(
            json.dumps(
                {"file": name, "ip": item.ip, "helo": item.helo, "mail_from": item.mail_from}
            )
        )
        queries.append(
            f"ip={item.ip}&helo={item.helo}&mail_from={item.mail_from.replace('@', '%40')}"
        )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, queries


def run_batch(
    manifest: Path, dns: list[str], config: Path
) -> tuple[float, float, list[dict[str, Any]]]:
    """`check --batch`: its whole run (start-up included), the time from its first verdict to
    its last (start-up excluded: its output is unbuffered, so each line is timed as it
    comes), and its verdicts."""
    started = time.perf_counter()
    process = subprocess.Popen(
        mailwarden("check", "--batch", str(manifest), "--json", "--config", str(config), *dns),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    lines, first = [], None
    for line in process.stdout:
        if first is None:
            first = time.perf_counter()
        lines.append(line)
    last = time.perf_counter()
    error = process.stderr.read()
    code = process.wait()
    process.stdout.close()
    process.stderr.close()
    if code != 0 or first is None:
        raise RuntimeError(f"check --batch exited {code}: {error[-2000:]}")
    return last - started, last - first, [json.loads(line) for line in lines]


class Server:
    """`mailwarden http` on a free loopback port, for one round."""

    def __init__(self, dns: list[str], config: Path, data: Path) -> None:
        self.process = subprocess.Popen(
            mailwarden(
                "http", "--listen", "127.0.0.1:0", "--json", "--config", str(config),
                "--data-dir", str(data), *dns,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            raise RuntimeError(f"mailwarden http did not start: {self.process.stderr.read()}")
        self.base = "http://" + json.loads(line)["listen"]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


async def post_all(
    base: str, corpus: Corpus, queries: list[str], clients: int
) -> tuple[float, float, list[dict[str, Any]]]:
    """Every message posted by `clients` concurrent clients: the whole time, the time from
    the first verdict to the last (as the batch is timed), and the verdicts."""
    results: list[dict[str, Any]] = [{} for _ in queries]
    pending = iter(range(len(queries)))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}
    connector = aiohttp.TCPConnector(limit=clients)
    done: list[float] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for index in pending:
            async with session.post(
                f"{base}/v1/check?{queries[index]}",
                data=corpus.items[index].message,
                headers=headers,
            ) as response:
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {await response.text()}")
                results[index] = await response.json()
            done.append(time.perf_counter())

    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return done[-1] - started, done[-1] - done[0], results


def http_round(
    dns: list[str], config: Path, data: Path, corpus: Corpus, queries: list[str], clients: int
) -> tuple[float, float, list[dict[str, Any]]]:
    server = Server(dns, config, data)
    try:
        return asyncio.run(post_all(server.base, corpus, queries, clients))
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--domains", type=int, default=40)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n_messages, n_domains, repeat, clients = (
        (6, 2, 1, 4) if args.quick else (args.messages, args.domains, args.repeat, args.clients)
    )
    corpus = Corpus(n_domains, n_messages)
    with tempfile.TemporaryDirectory(prefix="mailwarden-http-bench-") as temp:
        folder = Path(temp)
        config = folder / "mailwarden.toml"
        config.write_text(CONFIG)
        manifest, queries = write_corpus(corpus, folder)
        zone = master_file(corpus)
        nsd: NSD | None = None
        if nsd_program() is not None:
            nsd = start_nsd(folder / "nsd", {"example.": zone})
            dns = ["--dns-server", nsd.address, "--dns-timeout", "5"]
            dns_source = "nsd on loopback"
        else:
            (folder / "corpus.zone").write_text(zone)
            dns = ["--dns-zone", str(folder / "corpus.zone")]
            dns_source = "zone file (nsd not installed)"
        try:
            report = measure(folder, config, manifest, queries, corpus, dns, repeat, clients)
        finally:
            if nsd is not None:
                nsd.stop()
    report.update(messages=n_messages, clients=clients, dns=dns_source, repeat=repeat)
    if args.json:
        print(json.dumps(report))
        return 0
    rates = report["per_second"]
    print(
        f"POST /v1/check against check --batch: {n_messages} messages, {clients} HTTP clients, "
        f"DNS from {dns_source}, best of {repeat}"
    )
    print(f"verdicts equal: {report['equal']}/{n_messages}")
    print(f"{'check --batch (first to last verdict)':<38} {rates['batch']:>9,.0f} /s")
    print(f"{'check --batch (whole run)':<38} {rates['batch_with_startup']:>9,.0f} /s")
    print(f"{'POST /v1/check (first to last verdict)':<38} {rates['http']:>9,.0f} /s")
    whole = rates["http_from_first_request"]
    print(f"{'POST /v1/check (from the first request)':<38} {whole:>9,.0f} /s")
    print(
        f"ratio http / batch: {report['ratio']:.2f}x "
        f"({report['ratio_with_startup']:.2f}x counting the batch's start-up)"
    )
    return 0 if report["equal"] == n_messages else 1


def measure(
    folder: Path,
    config: Path,
    manifest: Path,
    queries: list[str],
    corpus: Corpus,
    dns: list[str],
    repeat: int,
    clients: int,
) -> dict[str, Any]:
    whole_times, batch_times, http_times, http_wholes = [], [], [], []
    batch_verdicts: list[dict[str, Any]] = []
    http_verdicts: list[dict[str, Any]] = []
    for round_number in range(repeat):
        whole, running, batch_verdicts = run_batch(manifest, dns, config)
        whole_times.append(whole)
        batch_times.append(running)
        data = folder / f"data{round_number}"
        whole, running, http_verdicts = http_round(dns, config, data, corpus, queries, clients)
        http_wholes.append(whole)
        http_times.append(running)
    equal = sum(
        1
        for ours, theirs in zip(batch_verdicts, http_verdicts, strict=True)
        if {k: v for k, v in ours.items() if k != "file"} == theirs
    )
    n = len(queries)
    # both timed from the first verdict to the last: n - 1 verdicts in that time
    batch = min(batch_times) / max(n - 1, 1) * n
    with_startup = min(whole_times)
    http = min(http_times) / max(n - 1, 1) * n
    return {
        "equal": equal,
        "per_second": {
            "batch": n / batch,
            "batch_with_startup": n / with_startup,
            "http": n / http,
            "http_from_first_request": n / min(http_wholes),
        },
        "ratio": batch / http,
        "ratio_with_startup": with_startup / http,
    }


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(HERE.parent / "src"))
    sys.exit(main())
