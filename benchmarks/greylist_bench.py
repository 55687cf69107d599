"""Greylisting decisions per second with many stored keys: memory vs SQLite vs Redis.

Run from the project root::

    python benchmarks/greylist_bench.py                   # 1,000,000 stored keys
    python benchmarks/greylist_bench.py --quick --json    # 1,000 keys, machine-readable

No Python peer exists to compare with: PyPI has no greylisting library (postgrey and
sqlgrey are Perl daemons; a naive dict-based script is not a peer). So the figures compare
the three stores behind the same `Greylister`, on the same workload, in the same run, and
print each store's ratio to the in-memory store.

Each store is first loaded with --keys triplets (half passed, half pending, bulk-loaded
outside the timing), spread over 50,000 client networks. The timed workload replays the
same decisions on every store: known passed triplets (pass), retries of pending triplets
after the minimum delay (pass) and first sightings (defer), in a seeded mix. The decisions
must be identical across stores (checked, reported as "agreement"). Timings: sequential
(one decision at a time: latency bound) and concurrent (--concurrency decisions in flight).
Redis: a private redis-server on a free loopback port (or --redis URL), flushed first. The
loaded data are frozen for the garbage collector (gc.freeze) while timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailwarden.greylist import (
    Entry,
    GreylistConfig,
    GreylistDecision,
    Greylister,
    GreylistStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    TripletKey,
)

SEED = 6647
NETWORKS = 50_000
NOW = 1_800_000_000.0
CONFIG = GreylistConfig()
PEER_NOTE = (
    "no Python greylisting library is installable from PyPI (postgrey and sqlgrey are Perl); "
    "the stores are compared with each other, ratios relative to the in-memory store"
)
MIX = {"known": 0.5, "retry": 0.3, "new": 0.2}


def letters(n: int) -> str:
    """A digit-free label for n (the sender key turns digit runs into '#')."""
    out = ""
    while True:
        n, rest = divmod(n, 26)
        out += chr(97 + rest)
        if n == 0:
            return out


def client_ip(i: int) -> str:
    n = i % NETWORKS
    return str(ipaddress.IPv4Address((100 << 24) + (n << 8) + 7))


def sender(i: int) -> str:
    return f"{letters(i)}@{letters(i % 997)}.example"


def recipient(i: int) -> str:
    return f"{letters(i % 5000)}@example.net"


def key(i: int) -> TripletKey:
    n = i % NETWORKS
    network = ipaddress.IPv4Address((100 << 24) + (n << 8))
    return TripletKey(f"net:{network}/24", sender(i), recipient(i))


def stored_entry(i: int) -> Entry:
    """Even keys passed a day ago; odd keys pending since ten minutes."""
    if i % 2 == 0:
        return Entry(key(i), NOW - 86_500, NOW - 86_400, 2, NOW - 86_400, NOW + CONFIG.pass_ttl)
    return Entry(key(i), NOW - 600, NOW - 600, 1, None, NOW - 600 + CONFIG.retry_window)


@dataclass(frozen=True)
class Delivery:
    kind: str
    ip: str
    sender: str
    recipient: str


def workload(keys: int, decisions: int) -> list[Delivery]:
    """Distinct attempts (each stored key used at most once), in a seeded mix."""
    rng = random.Random(SEED)
    known = rng.sample(range(0, keys, 2), min(keys // 2, int(decisions * MIX["known"])))
    retry = rng.sample(range(1, keys, 2), min(keys // 2, int(decisions * MIX["retry"])))
    new = list(range(keys, keys + decisions - len(known) - len(retry)))
    attempts = [("known", i) for i in known] + [("retry", i) for i in retry]
    attempts += [("new", i) for i in new]
    rng.shuffle(attempts)
    return [Delivery(kind, client_ip(i), sender(i), recipient(i)) for kind, i in attempts]


# -- bulk loading (setup, not timed) ----------------------------------------------------------
async def load_memory(store: MemoryStore, keys: int) -> None:
    for i in range(keys):
        entry = stored_entry(i)
        store.triplets[entry.key] = entry


async def load_sqlite(store: SQLiteStore, keys: int) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for i in range(keys):
            e = stored_entry(i)
            yield (
                e.key.origin,
                e.key.sender,
                e.key.recipient,
                e.first_seen,
                e.last_seen,
                e.attempts,
                e.passed_at,
                e.expires_at,
            )

    def work(db: Any) -> None:
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO triplets VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
        db.execute("COMMIT")

    await store.file.run(work)


async def load_redis(store: RedisStore, keys: int) -> None:
    await store.redis.flushdb()
    batch = 5_000
    for start in range(0, keys, batch):
        async with store.redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(keys, start + batch)):
                e = stored_entry(i)
                name = store._triplet_key(e.key)
                pipe.hset(
                    name,
                    mapping={
                        "origin": e.key.origin,
                        "sender": e.key.sender,
                        "recipient": e.key.recipient,
                        "first": repr(e.first_seen),
                        "last": repr(e.last_seen),
                        "attempts": e.attempts,
                        "passed": "" if e.passed_at is None else repr(e.passed_at),
                        "expires": repr(e.expires_at),
                    },
                )
                pipe.expire(name, int(e.expires_at - NOW))
            await pipe.execute()


# -- running ----------------------------------------------------------------------------------
async def decide_all(
    greylister: Greylister, attempts: Sequence[Delivery], concurrency: int
) -> tuple[list[GreylistDecision], float]:
    started = time.perf_counter()
    if concurrency <= 1:
        results = [await greylister.check(a.ip, a.sender, a.recipient) for a in attempts]
    else:
        results = []
        for start in range(0, len(attempts), concurrency):
            chunk = attempts[start : start + concurrency]
            results.extend(
                await asyncio.gather(
                    *(greylister.check(a.ip, a.sender, a.recipient) for a in chunk)
                )
            )
    return results, time.perf_counter() - started


@dataclass
class StoreRun:
    load_seconds: float
    sequential: float  # decisions per second
    concurrent: float
    actions: list[str]


async def run_store(
    kind: str,
    keys: int,
    attempts: Sequence[Delivery],
    concurrency: int,
    workdir: Path,
    redis_url: str | None,
) -> StoreRun:
    """Load the store, then time the first half of the attempts one at a time and the
    second half `concurrency` at a time (each attempt is distinct, so both halves meet the
    state the load left)."""
    half = len(attempts) // 2
    timings: list[float] = []
    actions: list[str] = []
    load_seconds = 0.0
    store = make_store(kind, workdir, redis_url)
    try:
        started = time.perf_counter()
        await load(store, keys)
        load_seconds = time.perf_counter() - started
        # The loaded data are permanent for the collector: with a million live objects (the
        # memory store) every full collection would otherwise walk them all, and the
        # figures would measure the collector instead of the store.
        gc.collect()
        gc.freeze()
        greylister = Greylister(store, clock=lambda: NOW, config=CONFIG)
        for part, width in ((attempts[:half], 1), (attempts[half:], concurrency)):
            decisions, seconds = await decide_all(greylister, part, width)
            timings.append(len(part) / seconds if seconds > 0 else float("inf"))
            actions.extend(d.action.value for d in decisions)
    finally:
        gc.unfreeze()
        await store.close()
    return StoreRun(load_seconds, timings[0], timings[1], actions)


def make_store(kind: str, workdir: Path, redis_url: str | None) -> GreylistStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        path = workdir / "greylist.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(path) + suffix).unlink()
        return SQLiteStore(path)
    assert redis_url is not None
    return RedisStore.from_url(redis_url)


async def load(store: GreylistStore, keys: int) -> None:
    if isinstance(store, MemoryStore):
        await load_memory(store, keys)
    elif isinstance(store, SQLiteStore):
        await load_sqlite(store, keys)
    elif isinstance(store, RedisStore):
        await load_redis(store, keys)


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server on a free loopback port, without persistence, stopped afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("greylist_bench: redis-server not on PATH (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", workdir]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                        conn.sendall(b"PING\r\n")
                        if conn.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("greylist_bench: redis-server did not start")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="stored triplets per store")
    parser.add_argument("--decisions", type=int, default=20_000, help="timed decisions per store")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stores", default="memory,sqlite,redis")
    parser.add_argument("--redis", metavar="URL", help="use this Redis (it is FLUSHED)")
    parser.add_argument("--quick", action="store_true", help="1,000 keys, 500 decisions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.decisions = 1_000, 500
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - {"memory", "sqlite", "redis"}
    if unknown or not stores or "memory" not in stores:
        parser.error("--stores: a comma-separated subset of memory,sqlite,redis with memory")
    attempts = workload(args.keys, args.decisions)

    with contextlib.ExitStack() as stack:
        redis_url = args.redis
        if "redis" in stores and redis_url is None:
            redis_url = stack.enter_context(private_redis())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="greylist-bench-")))
        runs = {
            kind: asyncio.run(
                run_store(kind, args.keys, attempts, args.concurrency, workdir, redis_url)
            )
            for kind in stores
        }

    reference = runs["memory"]
    agreement = {
        kind: sum(a == b for a, b in zip(run.actions, reference.actions, strict=True))
        for kind, run in runs.items()
    }
    expected = ["pass" if a.kind in ("known", "retry") else "defer" for a in attempts]
    correct = sum(a == b for a, b in zip(reference.actions, expected, strict=True))
    summary: dict[str, Any] = {
        "config": {
            "keys": args.keys,
            "decisions": len(attempts),
            "concurrency": args.concurrency,
            "networks": NETWORKS,
            "mix": MIX,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
        },
        "peer_note": PEER_NOTE,
        "load_seconds": {k: round(r.load_seconds, 2) for k, r in runs.items()},
        "decisions_per_second": {k: round(r.sequential) for k, r in runs.items()},
        "concurrent_decisions_per_second": {k: round(r.concurrent) for k, r in runs.items()},
        "ratios_vs_memory": {
            k: {
                "sequential": round(r.sequential / reference.sequential, 3),
                "concurrent": round(r.concurrent / reference.concurrent, 3),
            }
            for k, r in runs.items()
        },
        "agreement": {"decisions": len(attempts), "identical": agreement, "expected": correct},
        "actions": dict(Counter(reference.actions)),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"greylist decisions, {args.keys:,} stored keys, {len(attempts):,} decisions")
        print(f"  ({PEER_NOTE})")
        header = ("store", "load s", "seq/s", "conc/s", "seq ratio", "conc ratio")
        print("  {:8} {:>8} {:>10} {:>10} {:>10} {:>11}".format(*header))
        for kind, run in runs.items():
            ratio = summary["ratios_vs_memory"][kind]
            print(
                f"  {kind:8} {run.load_seconds:8.1f} {run.sequential:10,.0f}"
                f" {run.concurrent:10,.0f} {ratio['sequential']:10.3f} {ratio['concurrent']:11.3f}"
            )
        print(f"  agreement with memory: {agreement}; expected actions: {correct}/{len(attempts)}")
    # Exit status: every store decided exactly as the in-memory one. ("expected" may fall
    # short of the total when a client network collects auto_allow_after passes during the
    # run and its new triplets pass; that is correct behaviour, reported, not an error.)
    return 0 if all(v == len(attempts) for v in agreement.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
