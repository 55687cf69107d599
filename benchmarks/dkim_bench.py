"""DKIM verifications and signatures per second: mailwarden against dkimpy, same messages.

Run from the project root::

    python benchmarks/dkim_bench.py                # default sizes (well under a minute)
    python benchmarks/dkim_bench.py --quick --json # small sizes, machine-readable summary

A seeded generator writes --messages messages of about --size bytes (a dozen header fields,
some folded; a text body with the odd tab, double space and trailing blank). Each is signed
relaxed/relaxed once with an rsa-2048 key and once with an ed25519 key. Both implementations
then verify the same signed bytes, with the same key records: mailwarden through a
`StaticResolver` (standing for the network) and one `DKIMVerifier` for the whole run, so parsed
keys stay cached as in a running gateway; dkimpy through its `dnsfunc` hook answering from the
same table. Before timing, every message must pass with both. Signing is timed the same way
(mailwarden `sign`, dkimpy `dkim.sign`, same key, same message, relaxed/relaxed).

Figures are the best of --repeat rounds, rounds interleaved, the cyclic GC off while timing,
measured in CPU time of this process (so that other load on the machine does not skew one
side more than the other).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import importlib.metadata
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwarden.dkim import DKIMStatus, DKIMVerifier, PrivateKey, key_record, sign
from mailwarden.dkim.crypto import Algorithm, verify_data
from mailwarden.dns import StaticResolver
from mailwarden.message import Message

SEED = 6376
GOAL = 5.0  # mailwarden verifications per second, as a multiple of dkimpy's (rsa-2048)
GOAL_ED25519 = 3.5  # the goal for ed25519 (both sides check with libsodium)
DOMAIN = "bench.example"
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
    "server",
    "header",
    "body",
    "signature",
    "key",
    "domain",
    "selector",
    "relaxed",
    "simple",
    "canonical",
    "message",
    "delivery",
    "report",
    "policy",
    "alignment",
]


@dataclass
class Keys:
    rsa: rsa.RSAPrivateKey
    ed: ed25519.Ed25519PrivateKey

    def records(self) -> dict[str, str]:
        return {
            f"rsa._domainkey.{DOMAIN}": key_record(self.rsa),
            f"ed._domainkey.{DOMAIN}": key_record(self.ed),
        }

    def dkimpy_private(self, algorithm: str) -> bytes:
        if algorithm == "ed25519":
            raw = self.ed.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            return base64.b64encode(raw)
        return self.rsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    def ours(self, algorithm: str) -> PrivateKey:
        return self.ed if algorithm == "ed25519" else self.rsa


def make_message(rng: random.Random, n: int, size: int) -> bytes:
    """One message of about `size` bytes (CRLF)."""
    header = [
        f"Received: from relay{n}.example.net (relay{n}.example.net [192.0.2.{n % 250}])\r\n"
        f"\tby mx.{DOMAIN} with ESMTPS id {rng.getrandbits(48):x}\r\n"
        "\tfor <bob@example.net>; Mon, 1 Jan 2024 00:00:00 +0000",
        f"From: Alice Example <alice@{DOMAIN}>",
        "To: Bob <bob@example.net>,\r\n Carol <carol@example.net>",
        "Cc: Dave <dave@example.net>",
        f"Subject: message {n}: " + " ".join(rng.choice(WORDS) for _ in range(8)),
        "Date: Mon, 1 Jan 2024 00:00:00 +0000",
        f"Message-ID: <{rng.getrandbits(64):x}.{n}@{DOMAIN}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        f"List-Id: <list.{DOMAIN}>",
        "X-Mailer: bench 1.0",
    ]
    lines: list[str] = []
    total = 0
    while total < size - 600:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 12))]
        line = " ".join(words)
        roll = rng.random()
        if roll < 0.05:
            line = "\t" + line.replace(" ", "  ", 1)
        elif roll < 0.10:
            line += "   "
        elif roll < 0.15:
            line = ""
        lines.append(line)
        total += len(line) + 2
    body = "\r\n".join(lines) + "\r\n\r\n"
    return ("\r\n".join(header) + "\r\n\r\n" + body).encode()


def load_dkimpy() -> Any:
    import dkim

    return dkim


def dkimpy_dnsfunc(records: dict[str, str]) -> Callable[..., bytes | None]:
    table = {name.lower(): text.encode() for name, text in records.items()}

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        return table.get(text.rstrip(".").lower())

    return dnsfunc


def timed(run: Callable[[], int]) -> float:
    """Operations per second of one call of `run` (which returns its operation count)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.process_time()
        count = run()
        elapsed = time.process_time() - start
    finally:
        if enabled:
            gc.enable()
    return count / elapsed if elapsed > 0 else float("inf")


def primitive_costs(keys: Keys, n: int) -> dict[str, float]:
    """Microseconds per signature check of the bare crypto each side uses, for context:
    `cryptography`'s Ed25519 (OpenSSL, what mailwarden used before), PyNaCl's (libsodium, what
    dkimpy uses) and mailwarden's `verify_data` (libsodium, header hash included)."""
    import hashlib

    import nacl.signing
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    digest = hashlib.sha256(b"header data").digest()
    ed_signature = keys.ed.sign(digest)
    ed_public = keys.ed.public_key()
    raw = ed_public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    nacl_key = nacl.signing.VerifyKey(raw)
    rsa_signature = keys.rsa.sign(b"header data", padding.PKCS1v15(), hashes.SHA256())
    rsa_public = keys.rsa.public_key()

    def cost(check: Callable[[], object]) -> float:
        def run() -> int:
            for _ in range(n):
                check()
            return n

        return round(1e6 / max(timed(run) for _ in range(3)), 1)

    return {
        "cryptography_ed25519": cost(lambda: ed_public.verify(ed_signature, digest)),
        "pynacl_ed25519": cost(lambda: nacl_key.verify(digest, ed_signature)),
        "mailwarden_ed25519": cost(
            lambda: verify_data(ed_public, Algorithm.ED25519_SHA256, b"header data", ed_signature)
        ),
        "cryptography_rsa2048": cost(
            lambda: rsa_public.verify(
                rsa_signature, b"header data", padding.PKCS1v15(), hashes.SHA256()
            )
        ),
    }


def run_benchmark(n_messages: int, size: int, repeat: int) -> dict[str, Any]:
    dkim = load_dkimpy()
    rng = random.Random(SEED)
    keys = Keys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519.Ed25519PrivateKey.generate(),
    )
    records = keys.records()
    dnsfunc = dkimpy_dnsfunc(records)
    messages = [make_message(rng, n, size) for n in range(n_messages)]
    now = int(time.time())
    signed = {
        alg: [
            sign(m, DOMAIN, "ed" if alg == "ed25519" else "rsa", keys.ours(alg), timestamp=now) + m
            for m in messages
        ]
        for alg in ("rsa", "ed25519")
    }
    static = StaticResolver()
    for name, text in records.items():
        static.add(name, "TXT", text)
    verifier = DKIMVerifier(static)

    async def ours_verify(batch: Sequence[bytes]) -> list[str]:
        out = []
        for data in batch:
            results = await verifier.verify(Message.from_bytes(data))
            out.append(results[0].result.value if results else "none")
        return out

    # agreement: every message passes with both
    disagreements = 0
    for alg, batch in signed.items():
        mine = asyncio.run(ours_verify(batch))
        theirs = [dkim.verify(data, dnsfunc=dnsfunc) for data in batch]
        disagreements += sum(
            1 for a, b in zip(mine, theirs, strict=True) if (a == DKIMStatus.PASS) != bool(b)
        )
        if any(r != "pass" for r in mine) or not all(theirs):
            raise SystemExit(f"{alg}: not every message verified (ours {mine[:3]}...)")

    def mw_verify(alg: str) -> Callable[[], int]:
        def run() -> int:
            asyncio.run(ours_verify(signed[alg]))
            return len(signed[alg])

        return run

    def py_verify(alg: str) -> Callable[[], int]:
        def run() -> int:
            for data in signed[alg]:
                dkim.verify(data, dnsfunc=dnsfunc)
            return len(signed[alg])

        return run

    def mw_sign(alg: str) -> Callable[[], int]:
        selector, key = ("ed" if alg == "ed25519" else "rsa"), keys.ours(alg)

        def run() -> int:
            for m in messages:
                sign(m, DOMAIN, selector, key, timestamp=now)
            return len(messages)

        return run

    def py_sign(alg: str) -> Callable[[], int]:
        selector = b"ed" if alg == "ed25519" else b"rsa"
        private = keys.dkimpy_private(alg)
        algorithm = b"ed25519-sha256" if alg == "ed25519" else b"rsa-sha256"

        def run() -> int:
            for m in messages:
                dkim.sign(
                    m,
                    selector,
                    DOMAIN.encode(),
                    private,
                    canonicalize=(b"relaxed", b"relaxed"),
                    signature_algorithm=algorithm,
                )
            return len(messages)

        return run

    runs: dict[str, Callable[[], int]] = {}
    for alg in ("rsa", "ed25519"):
        runs[f"verify_{alg}_mailwarden"] = mw_verify(alg)
        runs[f"verify_{alg}_dkimpy"] = py_verify(alg)
        runs[f"sign_{alg}_mailwarden"] = mw_sign(alg)
        runs[f"sign_{alg}_dkimpy"] = py_sign(alg)
    best: dict[str, float] = dict.fromkeys(runs, 0.0)
    for _ in range(repeat):
        for name, run in runs.items():
            best[name] = max(best[name], timed(run))
    primitives = primitive_costs(keys, max(200, n_messages))
    ratios = {
        f"{kind}_{alg}": best[f"{kind}_{alg}_mailwarden"] / best[f"{kind}_{alg}_dkimpy"]
        for kind in ("verify", "sign")
        for alg in ("rsa", "ed25519")
    }
    return {
        "config": {
            "messages": n_messages,
            "message_bytes": round(sum(map(len, messages)) / len(messages)),
            "repeat": repeat,
            "dkimpy_version": importlib.metadata.version("dkimpy"),
        },
        "agreement": {"total": 2 * n_messages, "disagreements": disagreements},
        "per_second": {name: round(value, 1) for name, value in best.items()},
        "ratios": {name: round(value, 2) for name, value in ratios.items()},
        "goal": f"verification >= {GOAL}x dkimpy for rsa-2048, >= {GOAL_ED25519}x for ed25519",
        "goal_met": ratios["verify_rsa"] >= GOAL and ratios["verify_ed25519"] >= GOAL_ED25519,
        "goal_met_by_algorithm": {
            "rsa": ratios["verify_rsa"] >= GOAL,
            "ed25519": ratios["verify_ed25519"] >= GOAL_ED25519,
        },
        "primitive_verify_us": primitives,
        "ed25519_budget": ed25519_budget(best, primitives),
    }


def ed25519_budget(best: dict[str, float], primitives: dict[str, float]) -> dict[str, float]:
    """Where an ed25519 verification's time goes, per message, on each side.

    "check" is the bare signature check each side does (measured alone, above): ours is
    `verify_data` (libsodium through PyNaCl, the header hash included), dkimpy's PyNaCl's
    `VerifyKey.verify`; "rest" is everything else (parsing, canonicalization, body hashing, key
    handling, results). `rest_budget_for_goal_us` is what our rest may cost for the goal to be
    met with our check; `ratio_with_libsodium_check` estimates our ratio with a check costing
    exactly dkimpy's (our rest unchanged).
    """
    ours = 1e6 / best["verify_ed25519_mailwarden"]
    theirs = 1e6 / best["verify_ed25519_dkimpy"]
    our_check = primitives["mailwarden_ed25519"]
    their_check = primitives["pynacl_ed25519"]
    return {
        "mailwarden_us": round(ours, 1),
        "mailwarden_check_us": our_check,
        "mailwarden_rest_us": round(ours - our_check, 1),
        "dkimpy_us": round(theirs, 1),
        "dkimpy_check_us": their_check,
        "dkimpy_rest_us": round(theirs - their_check, 1),
        "rest_budget_for_goal_us": round(theirs / GOAL - our_check, 1),
        "ratio_if_rest_were_free": round(theirs / our_check, 2),
        "ratio_with_libsodium_check": round(theirs / (ours - our_check + their_check), 2),
    }


def print_report(summary: dict[str, Any]) -> None:
    config = summary["config"]
    print(
        f"DKIM benchmark: {config['messages']} messages of ~{config['message_bytes']} bytes, "
        f"best of {config['repeat']}, dkimpy {config['dkimpy_version']}"
    )
    agreement = summary["agreement"]
    print(f"agreement: {agreement['total'] - agreement['disagreements']}/{agreement['total']}")
    per_second = summary["per_second"]
    print(f"{'':28}{'mailwarden':>12}{'dkimpy':>12}{'ratio':>9}")
    for kind in ("verify", "sign"):
        for alg in ("rsa", "ed25519"):
            label = f"{kind} {'rsa-2048' if alg == 'rsa' else 'ed25519'} (/s)"
            ours = per_second[f"{kind}_{alg}_mailwarden"]
            theirs = per_second[f"{kind}_{alg}_dkimpy"]
            ratio = summary["ratios"][f"{kind}_{alg}"]
            print(f"{label:28}{ours:>12.1f}{theirs:>12.1f}{ratio:>8.2f}x")
    by_algorithm = ", ".join(
        f"{alg} {'met' if met else 'NOT met'}"
        for alg, met in summary["goal_met_by_algorithm"].items()
    )
    print(
        f"goal ({summary['goal']}): {'met' if summary['goal_met'] else 'NOT met'} ({by_algorithm})"
    )
    costs = summary["primitive_verify_us"]
    print(
        "bare signature check (us): "
        + ", ".join(f"{name} {value}" for name, value in costs.items())
    )
    budget = summary["ed25519_budget"]
    print(
        f"ed25519 per message (us): mailwarden {budget['mailwarden_us']:.0f} "
        f"(check {budget['mailwarden_check_us']:.0f}, rest {budget['mailwarden_rest_us']:.0f}), "
        f"dkimpy {budget['dkimpy_us']:.0f} "
        f"(check {budget['dkimpy_check_us']:.0f}, rest {budget['dkimpy_rest_us']:.0f})"
    )
    print(
        f"ed25519 goal needs our rest <= {budget['rest_budget_for_goal_us']:.0f} us; "
        f"ratio if our rest were free {budget['ratio_if_rest_were_free']:.2f}x, "
        f"with libsodium's check (estimate) {budget['ratio_with_libsodium_check']:.2f}x"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=300, help="messages per pass (300)")
    parser.add_argument("--size", type=int, default=10_240, help="bytes per message (10240)")
    parser.add_argument("--repeat", type=int, default=5, help="passes per figure, best kept (5)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.size, args.repeat = 10, 2048, 1
    summary = run_benchmark(args.messages, args.size, args.repeat)
    if args.json:
        print(json.dumps(summary))
    else:
        print_report(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
