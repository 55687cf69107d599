"""CPU per message of a full verdict, in one process: a deterministic harness for profiling.

Run from the project root::

    python benchmarks/warm_profile.py                       # warm and cold, CPU ms/message
    python benchmarks/warm_profile.py --profile warm        # + cProfile: calls/message, top 25
    python benchmarks/warm_profile.py --dump out.jsonl      # every verdict's JSON, for diffs
    valgrind --tool=callgrind python benchmarks/warm_profile.py --mode warm --messages 200

It checks verdict_bench.py's corpus (SPF, DKIM rsa-2048 and ed25519, DMARC, ARC) through
`mailwarden.pipeline` with a `StaticResolver`, one message after another (no concurrency, so
call counts repeat exactly from run to run):

* warm: one `Pipeline` for the corpus; a first pass fills its caches (DNS answers, compiled
  SPF policies, DKIM keys), the second pass is measured;
* cold: a new `Pipeline` over an empty cache for every message (the build counts).

The corpus holds freshly generated keys, so it is written once to `--corpus` (a pickle, by
default in the system's temporary folder) and read back by later runs: runs of two versions of
the code then check the same messages and can be compared verdict by verdict (`--dump`, and
tools/compare_verdicts.py). CPU time is `time.process_time`; on a shared machine call counts
(`--profile`) and instruction counts (callgrind) are the steadier measures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import ctypes
import ctypes.util
import gc
import json
import pickle
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mailwarden.dns import StaticResolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.pipeline import build
from mailwarden.runtime import loop_factory
from verdict_bench import SETTINGS, Corpus, Item

DEFAULT_CORPUS = Path(tempfile.gettempdir()) / "mailwarden-warm-profile-{domains}-{messages}.pickle"


def load_corpus(path: Path, n_domains: int, n_messages: int) -> tuple[Any, list[Item]]:
    """The zone and the messages: read from `path`, or made (verdict_bench's generator) and
    written there. Items are kept as plain tuples so either version of the code reads them."""
    if path.exists():
        zone, rows = pickle.loads(path.read_bytes())
    else:
        corpus = Corpus(n_domains, n_messages)
        zone = corpus.zone
        rows = [(i.message, i.ip, i.helo, i.mail_from) for i in corpus.items]
        path.write_bytes(pickle.dumps((zone, rows)))
    return zone, [Item(*row) for row in rows]


def static_resolver(zone: Any) -> StaticResolver:
    resolver = StaticResolver()
    for (name, rdtype), values in zone.items():
        for value in values:
            resolver.add(name, rdtype, list(value) if rdtype == "TXT" else value)
    return resolver


def run_warm(
    static: StaticResolver, items: list[Item], measure: Measure, concurrency: int = 1
) -> list[Any]:
    """One pipeline; a first pass fills the caches, `measure` wraps the second. With
    `concurrency` above 1, that many messages are in flight at once (as `check --batch` and
    verdict_bench.py's warm run do)."""
    loop = new_loop()
    try:

        async def first() -> Any:
            pipeline = build(SETTINGS, CachingResolver(static), network_checks=False)
            for item in items:
                await _check(pipeline, item)
            await pipeline.drain()
            return pipeline

        pipeline = loop.run_until_complete(first())

        async def second() -> list[Any]:
            limit = asyncio.Semaphore(concurrency)

            async def limited(item: Item) -> Any:
                async with limit:
                    return await _check(pipeline, item)

            if concurrency > 1:
                out = list(await asyncio.gather(*(limited(item) for item in items)))
            else:
                out = [await _check(pipeline, item) for item in items]
            await pipeline.drain()
            return out

        return measure(lambda: loop.run_until_complete(second()))
    finally:
        loop.close()


def run_cold(
    static: StaticResolver, items: list[Item], measure: Measure, concurrency: int = 1
) -> list[Any]:
    """A new pipeline and an empty cache for every message, one after another."""
    loop = new_loop()

    async def every() -> list[Any]:
        out = []
        for item in items:
            pipeline = build(SETTINGS, CachingResolver(static), network_checks=False)
            out.append(await _check(pipeline, item))
            await pipeline.drain()
        return out

    try:
        return measure(lambda: loop.run_until_complete(every()))
    finally:
        loop.close()


def new_loop() -> asyncio.AbstractEventLoop:
    """asyncio's own loop, or uvloop's with --uvloop (what the front ends run on)."""
    factory = loop_factory(USE_UVLOOP[0])
    return factory() if factory is not None else asyncio.new_event_loop()


USE_UVLOOP = [False]


async def _check(pipeline: Any, item: Item) -> Any:
    return await pipeline.check(item.message, ip=item.ip, helo=item.helo, mail_from=item.mail_from)


class Measure:
    """Times (process_time, gc off) and, when asked, profiles the measured pass. With
    `callgrind`, the pass runs inside a call of libc's `qsort` (its comparison function is
    the pass), so `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=qsort_r`
    counts the instructions of that pass alone (glibc's qsort jumps into qsort_r: toggling on
    `qsort` counts nothing)."""

    def __init__(self, profile: bool, callgrind: bool = False) -> None:
        self.profiler = cProfile.Profile() if profile else None
        self.callgrind = callgrind
        self.cpu = 0.0

    def __call__(self, work: Callable[[], list[Any]]) -> list[Any]:
        gc.collect()
        gc.disable()
        started = time.process_time()
        if self.profiler is not None:
            self.profiler.enable()
        try:
            return _inside_qsort(work) if self.callgrind else work()
        finally:
            if self.profiler is not None:
                self.profiler.disable()
            self.cpu = time.process_time() - started
            gc.enable()


def _inside_qsort(work: Callable[[], list[Any]]) -> list[Any]:
    """`work()` called from inside libc's qsort (sorting two ints calls the comparison once)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    compare_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)
    )
    out: list[list[Any]] = []
    failed: list[BaseException] = []

    def compare(a: Any, b: Any) -> int:
        if not out and not failed:
            try:
                out.append(work())
            except BaseException as exc:  # raised again outside the C frame
                failed.append(exc)
        return 0

    pair = (ctypes.c_int * 2)(1, 2)
    libc.qsort(pair, 2, ctypes.sizeof(ctypes.c_int), compare_type(compare))
    if failed:
        raise failed[0]
    return out[0]


def verdict_json(verdict: Any) -> dict[str, Any]:
    data: dict[str, Any] = verdict.to_dict()
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--domains", type=int, default=40)
    parser.add_argument("--limit", type=int, help="check only the corpus's first N messages")
    parser.add_argument("--corpus", type=Path, help="the corpus pickle (made when missing)")
    parser.add_argument("--mode", choices=("warm", "cold", "both"), default="both")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="warm: messages in flight (default 1)"
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="on uvloop's event loop (the front ends' loop)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="measured passes; the best kept")
    parser.add_argument(
        "--profile", choices=("warm", "cold"), help="cProfile this mode's measured pass"
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="run the measured pass inside qsort (valgrind --tool=callgrind "
        "--collect-atstart=no --toggle-collect=qsort_r)",
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--dump", type=Path, help="write every verdict's JSON (warm, then cold)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    corpus_path = args.corpus or Path(
        str(DEFAULT_CORPUS).format(domains=args.domains, messages=args.messages)
    )
    zone, items = load_corpus(corpus_path, args.domains, args.messages)
    USE_UVLOOP[0] = args.uvloop
    items = items[: args.limit] if args.limit else items
    static = static_resolver(zone)
    modes = ("warm", "cold") if args.mode == "both" else (args.mode,)
    runners = {"warm": run_warm, "cold": run_cold}
    report: dict[str, Any] = {
        "messages": len(items),
        "corpus": str(corpus_path),
        "loop": "uvloop" if args.uvloop else "asyncio",
    }
    dumped: list[str] = []
    for mode in modes:
        best = float("inf")
        for _ in range(max(1, args.repeat)):
            measure = Measure(args.profile == mode, args.callgrind)
            verdicts = runners[mode](static, items, measure, args.concurrency)
            best = min(best, measure.cpu)
            if measure.profiler is not None:
                stats = pstats.Stats(measure.profiler)
                calls = stats.total_calls  # type: ignore[attr-defined]
                report[f"{mode}_calls_per_message"] = calls / len(items)
                if not args.json:
                    stats.sort_stats(args.sort).print_stats(args.top)
        report[f"{mode}_cpu_ms_per_message"] = best * 1000 / len(items)
        if args.dump:
            dumped += [json.dumps({"mode": mode, **verdict_json(v)}) for v in verdicts]
    if args.dump:
        args.dump.write_text("\n".join(dumped) + "\n")
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
