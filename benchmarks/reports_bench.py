"""DMARC reports: what recording costs the gateway, how fast records are written, and how
fast reports are read next to parsedmarc.

Run from the project root::

    python benchmarks/reports_bench.py                # default sizes (about a minute)
    python benchmarks/reports_bench.py --quick --json # small sizes, machine-readable summary

1. Gateway throughput with and without recording: two `mailwarden serve` processes with
   every check, the same zone (example.com has a DMARC record with a rua, so each message is
   a full evaluation) and the same downstream (`mailwarden sink`), one with `[reports]
   record = true` (the default) and one with it off; the clients of gateway_bench.py send
   through each in interleaved rounds, the best round of each kept. The ratio with/without
   is the share of throughput left with recording on (the goal: at least 0.95). The
   evaluations in the recording gateway's store, over the time it was loaded, give the
   records written per second during gateway load.
2. The recorder alone: evaluations queued and written to SQLite in batches, per second.
3. Import speed: every file of ../shared/testdata/dmarc-report-samples read --rounds times
   by `mailwarden.reports.incoming.read_reports` and by parsedmarc's `parse_report_file`
   (offline), the same bytes; the ratio is ours/parsedmarc in files per second.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reports.helpers import evaluation  # noqa: E402
from tests.testdata import testdata_dir  # noqa: E402

from mailwarden.reports import Recorder, ReportSettings, SQLiteStore  # noqa: E402
from mailwarden.reports.incoming import read_reports  # noqa: E402


def gateway_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gateway_bench_for_reports", ROOT / "benchmarks" / "gateway_bench.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def gateway_load(args: argparse.Namespace) -> dict[str, Any]:
    gb = gateway_bench()
    data = gb.message(args.size)
    with tempfile.TemporaryDirectory(prefix="mailwarden-reports-bench-") as tmp:
        folder = Path(tmp)
        zone = gb.zone_file(folder)
        with zone.open("a") as stream:
            stream.write(
                '_dmarc.example.com. IN TXT "v=DMARC1; p=none; rua=mailto:d@example.com"\n'
            )
        sink_port = gb.free_port()
        ports = {"with": gb.free_port(), "without": gb.free_port()}
        configs = {}
        for name, port in ports.items():
            sub = folder / name
            sub.mkdir()
            path = gb.gateway_config(sub, port, sink_port)
            with path.open("a") as stream:
                stream.write(f"[reports]\nrecord = {'true' if name == 'with' else 'false'}\n")
            configs[name] = path
        with (
            gb.mailwarden(
                "sink",
                "--listen",
                f"127.0.0.1:{sink_port}",
                "--maildir",
                str(folder / "sink"),
                "--no-fsync",
            ),
            gb.mailwarden("serve", "--config", str(configs["with"]), "--dns-zone", str(zone)),
            gb.mailwarden("serve", "--config", str(configs["without"]), "--dns-zone", str(zone)),
        ):
            rates: dict[str, list[float]] = {"with": [], "without": []}
            loaded = 0.0
            sent_with = 0
            for _ in range(args.repeat):
                for name in ("without", "with"):
                    started = time.perf_counter()
                    rate = asyncio.run(
                        gb.throughput(ports[name], args.messages, args.clients, data)
                    )
                    if name == "with":
                        loaded += time.perf_counter() - started
                        sent_with += args.messages
                    rates[name].append(rate)
            time.sleep(2.5)  # the recorder writes at least every second
            store = folder / "with" / "data" / "reports.sqlite3"
            with sqlite3.connect(store) as db:
                recorded = db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    best_with, best_without = max(rates["with"]), max(rates["without"])
    return {
        "with_recording_msgs_per_s": round(best_with, 1),
        "without_recording_msgs_per_s": round(best_without, 1),
        "ratio": round(best_with / best_without, 3),
        "messages_sent_with_recording": sent_with,
        "evaluations_recorded": recorded,
        "records_per_s_during_load": round(recorded / loaded, 1) if loaded else 0.0,
    }


async def hook_cost(count: int) -> dict[str, Any]:
    """In process, free of the machine's noise: the end-of-data decision (every check, DNS
    from the bench zone) against what recording adds to it, per message."""
    from mailwarden.dns import StaticResolver
    from mailwarden.pipeline import SessionChecks, build
    from mailwarden.pipeline.recording import record
    from mailwarden.settings import DNSListSettings, GatewaySettings, Settings

    gb = gateway_bench()
    with tempfile.TemporaryDirectory() as tmp:
        zone = StaticResolver()
        zone.load_master_text(gb.ZONE)
        zone.add("_dmarc.example.com", "TXT", "v=DMARC1; p=none; rua=mailto:d@example.com")
        settings = Settings(
            gateway=GatewaySettings(hostname="mx.bench.example", data_dir=tmp),
            dnsbl=DNSListSettings(use=()),
        )
        store = SQLiteStore(Path(tmp) / "r.sqlite3")
        pipeline = build(settings, zone, reports=store)
        recorder = pipeline.recorder
        assert recorder is not None
        pipeline.recorder = None  # the decision alone first
        session = SessionChecks(pipeline, "127.0.0.1")
        session.helo("client.bench.example")
        data = gb.message(4096)
        tx = session.mail("alice@example.com", "client.bench.example")
        decision = await tx.data(data, ["bob@example.net"])
        started = time.perf_counter()
        for _ in range(count):
            tx = session.mail("alice@example.com", "client.bench.example")
            decision = await tx.data(data, ["bob@example.net"])
        checks = (time.perf_counter() - started) / count
        started = time.perf_counter()
        for _ in range(count):
            record(
                recorder,
                decision,
                ip="127.0.0.1",
                mail_from="alice@example.com",
                rcpts=["bob@example.net"],
                now=time.time(),
            )
        hook = (time.perf_counter() - started) / count
        await recorder.close()
        await session.close()
        await pipeline.drain()
        return {
            "messages": count,
            "decision_us_per_message": round(checks * 1e6, 1),
            "recording_us_per_message": round(hook * 1e6, 2),
            "recording_share_of_decision": round(hook / checks, 4),
            "written": recorder.written,
        }


async def recorder_rate(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "r.sqlite3")
        recorder = Recorder(store, ReportSettings(), interval=0.2)
        items = [
            evaluation(time=1.7e9 + i, source_ip=f"10.0.{i % 250}.{i // 250 % 250}")
            for i in range(count)
        ]
        started = time.perf_counter()
        for item in items:
            recorder.record(item)
        queued = time.perf_counter() - started
        await recorder.close()
        elapsed = time.perf_counter() - started
        return {
            "evaluations": count,
            "queue_us_per_record": round(queued / count * 1e6, 2),
            "written_per_s": round(recorder.written / elapsed, 1),
        }


def import_speed(rounds: int) -> dict[str, Any]:
    base = testdata_dir() / "dmarc-report-samples"
    files = sorted(
        p
        for p in base.rglob("*")
        if p.is_file() and p.suffix not in (".md", ".MIT") and p.name != "LICENSE"
    )
    blobs = [p.read_bytes() for p in files]
    started = time.perf_counter()
    ours_reports = 0
    for _ in range(rounds):
        for blob in blobs:
            ours_reports += sum(1 for f in read_reports(blob) if f.report is not None)
    ours = time.perf_counter() - started
    result: dict[str, Any] = {
        "files": len(files),
        "rounds": rounds,
        "ours_files_per_s": round(len(files) * rounds / ours, 1),
        "ours_reports_read": ours_reports // rounds,
    }
    try:
        import logging

        from parsedmarc import parse_report_file

        logging.getLogger("parsedmarc").setLevel(logging.CRITICAL)
    except ImportError:
        result["parsedmarc"] = "not installed (pip install parsedmarc)"
        return result
    started = time.perf_counter()
    theirs_reports = 0
    for _ in range(rounds):
        for blob in blobs:
            try:
                parse_report_file(blob, offline=True)
                theirs_reports += 1
            except Exception:
                pass
    theirs = time.perf_counter() - started
    result["parsedmarc_files_per_s"] = round(len(files) * rounds / theirs, 1)
    result["parsedmarc_reports_read"] = theirs_reports // rounds
    result["ratio_ours_vs_parsedmarc"] = round(theirs / ours, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=1000, help="messages per round (1000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--size", type=int, default=4096, help="message size in octets (4096)")
    parser.add_argument("--repeat", type=int, default=6, help="rounds, best kept (6)")
    parser.add_argument("--records", type=int, default=100_000, help="recorder alone (100000)")
    parser.add_argument("--rounds", type=int, default=5, help="import rounds (5)")
    parser.add_argument("--hook", type=int, default=2000, help="in-process messages (2000)")
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway load")
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.clients, args.repeat, args.records, args.rounds = 40, 10, 1, 2000, 1
        args.hook = 50
    summary: dict[str, Any] = {
        "config": {
            "messages": args.messages,
            "clients": args.clients,
            "size": args.size,
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
        },
        "gateway": None if args.no_gateway else gateway_load(args),
        "hook": asyncio.run(hook_cost(args.hook)),
        "recorder": asyncio.run(recorder_rate(args.records)),
        "import": import_speed(args.rounds),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    gateway = summary["gateway"]
    if gateway:
        print(f"gateway with recording:    {gateway['with_recording_msgs_per_s']:>9} msg/s")
        print(f"gateway without recording: {gateway['without_recording_msgs_per_s']:>9} msg/s")
        print(f"ratio with/without:        {gateway['ratio']:>9} (goal >= 0.95)")
        print(
            f"records written during load: {gateway['records_per_s_during_load']} /s "
            f"({gateway['evaluations_recorded']} of {gateway['messages_sent_with_recording']})"
        )
    hook = summary["hook"]
    print(
        f"in process: the decision {hook['decision_us_per_message']} us/message, recording "
        f"{hook['recording_us_per_message']} us ({hook['recording_share_of_decision']:.2%})"
    )
    recorder = summary["recorder"]
    print(
        f"recorder alone: {recorder['written_per_s']} records/s written, "
        f"{recorder['queue_us_per_record']} us to queue one"
    )
    imported = summary["import"]
    print(f"import: {imported['ours_files_per_s']} files/s ({imported['files']} sample files)")
    if "parsedmarc_files_per_s" in imported:
        print(
            f"parsedmarc: {imported['parsedmarc_files_per_s']} files/s; "
            f"ours/parsedmarc = {imported['ratio_ours_vs_parsedmarc']}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
