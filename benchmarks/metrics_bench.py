"""What the metrics cost: full verdicts per second on the warm path, with the metrics counted
and with every metrics function replaced by a no-op, in the same run.

Run from the project root::

    python benchmarks/metrics_bench.py              # 300 messages, 7 rounds
    python benchmarks/metrics_bench.py --quick --json

The corpus is verdict_bench.py's (SPF include chains, rsa-2048 and ed25519 DKIM, DMARC, ARC;
about 10 KB per message); one `Pipeline` checks it concurrently as `mailwarden check --batch`
does (DNS answers, SPF policies and DKIM keys cached), so the metrics' share is the largest it
can be: nothing else (network, disk) dilutes it. Time is the process's CPU time (a busy
machine's waiting is not counted); the rounds alternate ABBA between the two and the best
round of each is compared. The script prints the ratio (with metrics / without), to stay
within a few percent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mailwarden import metrics
from verdict_bench import Corpus, mailwarden_warm, timed

# the functions the pipeline, the DNS cache and the front ends call
RECORDING = (
    "check_seconds",
    "dns_cache",
    "dns_query",
    "greylist_decision",
    "reply_sent",
    "stage_seconds",
    "transaction",
    "verdict_seen",
)


@contextmanager
def metrics_off() -> Iterator[None]:
    saved: dict[str, Callable[..., Any]] = {}
    for name in RECORDING:
        if hasattr(metrics, name):
            saved[name] = getattr(metrics, name)
            setattr(metrics, name, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(metrics, name, function)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--domains", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n_messages, n_domains, rounds = (
        (6, 2, 1) if args.quick else (args.messages, args.domains, args.rounds)
    )
    corpus = Corpus(n_domains, n_messages)
    static = corpus.static()

    def run() -> float:
        started = time.process_time()
        asyncio.run(mailwarden_warm(corpus, static))
        return time.process_time() - started

    run()  # warm the imports and the code paths once
    on: list[float] = []
    off: list[float] = []
    for _ in range(rounds):  # ABBA: neither mode always runs first
        on.append(timed(run))
        with metrics_off():
            off.append(timed(run))
            off.append(timed(run))
        on.append(timed(run))
    with_metrics, without = min(on), min(off)
    report = {
        "messages": n_messages,
        "per_second": {
            "with_metrics": n_messages / with_metrics,
            "without_metrics": n_messages / without,
        },
        "cost_ratio": with_metrics / without,
        "cost_percent": (with_metrics / without - 1) * 100,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"warm path, {n_messages} messages: {report['per_second']['with_metrics']:.0f}/s "
            f"with metrics, {report['per_second']['without_metrics']:.0f}/s without: "
            f"ratio {report['cost_ratio']:.3f} ({report['cost_percent']:+.1f}%)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
