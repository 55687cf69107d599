"""ARC chain validations per second: mailwarden against dkimpy's arc_verify, same messages.

Run from the project root::

    python benchmarks/arc_bench.py                # default sizes (well under a minute)
    python benchmarks/arc_bench.py --quick --json # small sizes, machine-readable summary

A seeded generator writes --messages messages of about --size bytes; each travels through one
to three forwarders (list.example, fwd.example, relay.example, rsa-2048 keys: dkimpy's ARC
knows only rsa-sha256), each validating the chain as received and sealing with mailwarden's
`seal`; every third message gets a list footer after its first hop (so oldest-pass > 0), and
one in ten has its body changed after the last seal (so it must fail). Both implementations
then validate the same bytes against the same key records: mailwarden through a
`StaticResolver` (standing for the network), dkimpy through its `dnsfunc` hook answering from
the same table. Before timing, the two must agree on every chain status.

Figures: `mailwarden_cold` parses every key record on every validation, as dkimpy does;
`mailwarden_warm` shares a `DKIMVerifier` key cache (`key_source=`), as the gateway does.
Each is the best of --repeat rounds, rounds interleaved, the cyclic GC off while timing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dkim_bench import dkimpy_dnsfunc, load_dkimpy, timed  # the same peer and CPU timing
from mailwarden.arc import ARCStatus, ARCVerifier, header_block, seal
from mailwarden.dkim import DKIMVerifier, key_record
from mailwarden.dns import StaticResolver
from mailwarden.message import Message

SEED = 8617
GOAL = 3.0  # mailwarden validations per second, as a multiple of dkimpy's
SEALERS = ("list.example", "fwd.example", "relay.example")
SELECTOR = "arc"
NOW = 1_700_000_000
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "mail",
    "list",
    "forward",
    "chain",
    "seal",
    "instance",
    "signature",
    "header",
    "body",
    "relaxed",
    "canonical",
    "message",
    "delivery",
    "report",
    "policy",
    "alignment",
]


def make_message(rng: random.Random, n: int, size: int) -> bytes:
    """One message of about `size` bytes (CRLF), with the origin's Authentication-Results."""
    header = [
        f"Received: from out{n}.origin.example (out{n}.origin.example [192.0.2.{n % 250}])\r\n"
        f"\tby mx.list.example with ESMTPS id {rng.getrandbits(48):x}; "
        "Mon, 1 Jan 2024 00:00:00 +0000",
        "From: Alice Example <alice@origin.example>",
        "To: List <list@list.example>",
        f"Subject: message {n}: " + " ".join(rng.choice(WORDS) for _ in range(8)),
        "Date: Mon, 1 Jan 2024 00:00:00 +0000",
        f"Message-ID: <{rng.getrandbits(64):x}.{n}@origin.example>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    lines: list[str] = []
    total = 0
    while total < size - 500:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))
        if rng.random() < 0.1:
            line = "\t" + line + "  "
        lines.append(line)
        total += len(line) + 2
    body = "\r\n".join(lines) + "\r\n"
    return ("\r\n".join(header) + "\r\n\r\n" + body).encode()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def forward(
    data: bytes,
    hops: int,
    keys: dict[str, rsa.RSAPrivateKey],
    verifier: ARCVerifier,
    footer: bool,
) -> bytes:
    """`data` after `hops` forwarders, each validating, (the first maybe adding a footer,)
    then sealing."""
    message = Message.from_bytes(data)
    for hop in range(hops):
        domain = SEALERS[hop]
        received = await verifier.verify(message)
        if footer and hop == 0:
            message = Message(message.fields, message.separator, message.body + b"-- \r\nlist\r\n")
        fields = seal(
            message,
            domain=domain,
            selector=SELECTOR,
            private_key=keys[domain],
            authserv_id=f"mx.{domain}",
            auth_results=f"arc={received.result}; spf=pass smtp.mailfrom=origin.example; "
            "dkim=pass header.d=origin.example; dmarc=pass header.from=origin.example",
            chain_validation=received.result,
            timestamp=NOW,
        )
        message = message.prepend(header_block(fields))
    return message.raw


def run_benchmark(n_messages: int, size: int, repeat: int) -> dict[str, Any]:
    dkim = load_dkimpy()
    rng = random.Random(SEED)
    keys = {d: rsa.generate_private_key(public_exponent=65537, key_size=2048) for d in SEALERS}
    records = {f"{SELECTOR}._domainkey.{d}": key_record(k) for d, k in keys.items()}
    dnsfunc = dkimpy_dnsfunc(records)
    static = StaticResolver()
    for name, text in records.items():
        static.add(name, "TXT", text)
    cold = ARCVerifier(static)
    warm = ARCVerifier(static, key_source=DKIMVerifier(static).key)

    async def build() -> list[bytes]:
        out = []
        for n in range(n_messages):
            data = await forward(make_message(rng, n, size), n % 3 + 1, keys, cold, n % 3 == 0)
            if n % 10 == 9:  # changed after the last seal: must fail
                data = data.replace(b"quick", b"quack", 1)
            out.append(data)
        return out

    chains = asyncio.run(build())

    async def ours(verifier: ARCVerifier) -> list[ARCStatus]:
        return [(await verifier.verify(Message.from_bytes(d))).result for d in chains]

    mine = asyncio.run(ours(cold))
    theirs = [dkim.arc_verify(d, dnsfunc=dnsfunc)[0] for d in chains]
    theirs_text = [(cv or b"fail").decode() for cv in theirs]
    disagreements = [
        i for i, (a, b) in enumerate(zip(mine, theirs_text, strict=True)) if a.value != b
    ]
    if asyncio.run(ours(warm)) != mine:
        raise SystemExit("warm and cold validation disagree")
    outcomes = {status.value: mine.count(status) for status in ARCStatus if status in mine}

    def mw(verifier: ARCVerifier) -> Callable[[], int]:
        def run() -> int:
            asyncio.run(ours(verifier))
            return len(chains)

        return run

    def py() -> int:
        for data in chains:
            dkim.arc_verify(data, dnsfunc=dnsfunc)
        return len(chains)

    runs: dict[str, Callable[[], int]] = {
        "mailwarden_cold": mw(cold),
        "mailwarden_warm": mw(warm),
        "dkimpy": py,
    }
    best: dict[str, float] = dict.fromkeys(runs, 0.0)
    for _ in range(repeat):
        for name, run in runs.items():
            best[name] = max(best[name], timed(run))
    ratios = {
        "cold": best["mailwarden_cold"] / best["dkimpy"],
        "warm": best["mailwarden_warm"] / best["dkimpy"],
    }
    sets = sum(data.count(b"\r\nARC-Seal:") + data.startswith(b"ARC-Seal:") for data in chains)
    return {
        "config": {
            "messages": n_messages,
            "message_bytes": round(sum(map(len, chains)) / len(chains)),
            "arc_sets_per_message": round(sets / len(chains), 2),
            "repeat": repeat,
            "dkimpy_version": _version("dkimpy"),
        },
        "agreement": {
            "total": len(chains),
            "disagreements": len(disagreements),
            "examples": disagreements[:5],
        },
        "outcomes": outcomes,
        "validations_per_second": {name: round(value, 1) for name, value in best.items()},
        "ratios": {name: round(value, 2) for name, value in ratios.items()},
        "goal": f"validation >= {GOAL}x dkimpy (cold)",
        "goal_met": ratios["cold"] >= GOAL,
    }


def print_report(summary: dict[str, Any]) -> None:
    config = summary["config"]
    print(
        f"ARC benchmark: {config['messages']} messages of ~{config['message_bytes']} bytes, "
        f"{config['arc_sets_per_message']} ARC sets each on average, best of "
        f"{config['repeat']}, dkimpy {config['dkimpy_version']}"
    )
    agreement = summary["agreement"]
    print(
        f"agreement: {agreement['total'] - agreement['disagreements']}/{agreement['total']} "
        f"(outcomes {summary['outcomes']})"
    )
    per_second = summary["validations_per_second"]
    print(f"{'chain validations/s':32}{'':>12}{'ratio':>9}")
    for name in ("mailwarden_cold", "mailwarden_warm", "dkimpy"):
        ratio = summary["ratios"].get(name.removeprefix("mailwarden_"))
        shown = f"{ratio:>8.2f}x" if ratio is not None else ""
        print(f"{name:32}{per_second[name]:>12.1f}{shown}")
    print(f"goal ({summary['goal']}): {'met' if summary['goal_met'] else 'NOT met'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=150, help="messages per pass (150)")
    parser.add_argument("--size", type=int, default=8_192, help="bytes per message (8192)")
    parser.add_argument("--repeat", type=int, default=5, help="passes per figure, best kept (5)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.size, args.repeat = 12, 2048, 1
    summary = run_benchmark(args.messages, args.size, args.repeat)
    if args.json:
        print(json.dumps(summary))
    else:
        print_report(summary)
    return 0 if summary["agreement"]["disagreements"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
