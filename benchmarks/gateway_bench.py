"""Gateway throughput and memory: messages per second through `mailwarden serve` against the
same clients talking straight to the downstream, in the same run.

Run from the project root::

    python benchmarks/gateway_bench.py                # default sizes (about a minute)
    python benchmarks/gateway_bench.py --quick --json # small sizes, machine-readable summary

Every server is a separate process on loopback: the downstream (the built-in sink,
`mailwarden sink`, and a private Postfix when Postfix is installed and we are root), and a
gateway (`mailwarden serve` with every check: iprev, HELO, DNS lists, SPF, DKIM, DMARC, ARC,
policy and greylisting, its DNS answered from a static zone; no greet pause, no log)
relaying to it. The clients
are asyncio tasks in this process: --clients of them (50) each send messages one connection
at a time (EHLO, MAIL, RCPT, DATA, QUIT), first straight to the downstream, then through the
gateway, round after round, the best round kept. The ratio gateway/direct is the share of the
downstream's throughput left when the gateway sits in front of it (1.0: no overhead). The
CPU each party spends per message (gateway, downstream, clients) is printed too, with the
ratio those costs allow when all three share the machine's cores and the gateway CPU per
message the 0.8 goal would leave.

Then --idle connections (1,000) are opened to the gateway and left idle after the greeting:
the gateway's resident memory before and with them gives the cost of an idle connection
(goal: under 12 MB for 1,000). Last, --large-count messages (8) of --large-size octets
(20 MB) are sent at once: the gateway's peak resident memory above its level before gives
the cost of large messages (goal: well under 100 MB; bodies over the spool threshold are
spooled to disk and streamed through the checks and the relay).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailwarden.cli.workers import default_workers

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "example.net"
RCPT = f"bob@{DOMAIN}"  # a user the private Postfix knows
BODY_LINE = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"


def message(size: int) -> bytes:
    head = b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: bench\r\n\r\n"
    lines = max(1, (size - len(head)) // len(BODY_LINE))
    return head + BODY_LINE * lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of a process and of its worker processes (`serve --workers N`)."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
            break
    else:
        raise RuntimeError("no VmRSS")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += rss_kib(int(child))
            except (OSError, RuntimeError):  # a worker that just ended
                continue
    return total


@contextmanager
def mailwarden(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`mailwarden ARGS --json` in a subprocess, ready when it printed its address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwarden", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        if not proc.stdout.readline():
            assert proc.stderr is not None
            raise RuntimeError(f"mailwarden {args[0]} did not start: {proc.stderr.read()}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# The DNS the gateway's checks see (offline): the benchmark's client is a clean sender for
# example.com (SPF pass, forward-confirmed reverse name), and the default DNS lists answer
# their RFC 5782 test entries so their health check passes.
ZONE = """\
$ORIGIN example.com.
@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
$ORIGIN bench.example.
client IN A 127.0.0.1
1.0.0.127.in-addr.arpa. IN PTR client.bench.example.
2.0.0.127.bl.spamcop.net. IN A 127.0.0.2
2.0.0.127.psbl.surriel.com. IN A 127.0.0.2
"""


def zone_file(folder: Path) -> Path:
    path = folder / "bench.zone"
    path.write_text(ZONE)
    return path


def gateway_config(folder: Path, port: int, downstream: int) -> Path:
    path = folder / f"gateway-{port}.toml"
    path.write_text(
        f"""
[gateway]
listen = "127.0.0.1:{port}"
hostname = "mx.bench.example"
local_domains = ["{DOMAIN}"]
relay_to = "127.0.0.1:{downstream}"
greet_pause = 0
log_file = ""
data_dir = "{folder / "data"}"
[gateway.limits]
max_connections = 5000
max_connections_per_client = 5000
max_message_size = 104857600
[gateway.tls]
enabled = false
"""
    )
    return path


class SMTPError(Exception):
    pass


async def expect(reader: asyncio.StreamReader, code: int) -> None:
    while True:
        line = await reader.readline()
        if not line:
            raise SMTPError(f"connection closed, expected {code}")
        if line[3:4] != b"-":
            break
    if int(line[:3]) != code:
        raise SMTPError(line.decode(errors="replace").strip())


async def send_one(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await expect(reader, 220)
        for command, code in (
            (b"EHLO client.bench.example", 250),
            (b"MAIL FROM:<alice@example.com>", 250),
            (f"RCPT TO:<{RCPT}>".encode(), 250),
            (b"DATA", 354),
        ):
            writer.write(command + b"\r\n")
            await expect(reader, code)
        writer.write(data + b".\r\n")
        await expect(reader, 250)
        writer.write(b"QUIT\r\n")
        await expect(reader, 221)
    finally:
        writer.close()
        await writer.wait_closed()


async def throughput(port: int, messages: int, clients: int, data: bytes) -> float:
    """Messages per second with `clients` concurrent senders."""
    remaining = messages

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await send_one(port, data)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return messages / (time.perf_counter() - started)


async def large_memory(pid: int, port: int, count: int, size: int) -> dict[str, float]:
    """Peak RSS above the starting level while `count` messages of `size` octets go through
    at once (sampled every 10 ms)."""
    data = message(size)
    before = rss_kib(pid)
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            await asyncio.sleep(0.01)

    sampler = asyncio.ensure_future(sample())
    started = time.perf_counter()
    try:
        await asyncio.gather(*(send_one(port, data) for _ in range(count)))
    finally:
        done.set()
        await sampler
    return {
        "messages": count,
        "size_mib": round(len(data) / 2**20, 1),
        "seconds": round(time.perf_counter() - started, 2),
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rise_mib": round((peak - before) / 1024, 1),
    }


async def idle_memory(pid: int, port: int, count: int) -> dict[str, float]:
    before = rss_kib(pid)
    writers: list[asyncio.StreamWriter] = []
    try:
        for start in range(0, count, 100):
            opened = await asyncio.gather(
                *(
                    asyncio.open_connection("127.0.0.1", port)
                    for _ in range(min(100, count - start))
                )
            )
            for reader, writer in opened:
                await expect(reader, 220)
                writers.append(writer)
        await asyncio.sleep(0.5)
        during = rss_kib(pid)
    finally:
        for writer in writers:
            writer.close()
    return {
        "connections": count,
        "rss_before_mib": round(before / 1024, 1),
        "rss_idle_mib": round(during / 1024, 1),
        "kib_per_connection": round((during - before) / count, 1),
    }


def start_postfix(folder: Path) -> Any:
    """The tests' private Postfix, when this machine can run one; else None."""
    if os.geteuid() != 0 or not shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin"):
        return None
    sys.path.insert(0, str(ROOT))
    from tests.gateway.postfix import start_postfix as start

    root = folder / "postfix"
    root.mkdir()
    return start(root)


def postfix_pid(postfix: Any) -> int:
    """The private Postfix's master process: its descendants (smtpd, cleanup, qmgr, the
    delivery agents) do the downstream's work."""
    return int((postfix.root / "queue" / "pid" / "master.pid").read_text().split()[0])


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its descendants (the
    gateway's workers; Postfix's smtpd, cleanup and delivery processes), from /proc; 0.0
    where /proc is missing. Those that ended count too, through the time of reaped children
    each process keeps (cutime, cstime): Postfix ends an smtpd after 100 clients."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = sum(int(field) for field in fields[11:15]) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += used.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


def own_cpu() -> float:
    """CPU seconds (user + system) of this process: the benchmark's clients."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compare(
    port_direct: int,
    port_gateway: int,
    args: argparse.Namespace,
    data: bytes,
    gateway_pid: int,
    downstream_pid: int,
) -> dict[str, Any]:
    """Rounds straight to the downstream and through the gateway, interleaved; the best of
    each, and the CPU per message of the gateway, the downstream and the clients (figures
    other load on the machine barely moves, unlike throughput).

    All three share the machine's cores: when those are the limit, the ratio is
    `cpu_bound_ratio`, the clients' and the downstream's CPU per message straight to it over
    theirs plus the gateway's through it (a round that leaves cores idle, waiting on the
    network, can do better). `gateway_cpu_budget_ms` is the gateway CPU per message the 0.8
    goal leaves at these costs."""
    direct: list[float] = []
    through: list[float] = []
    cost: dict[str, list[float]] = {
        key: [] for key in ("gateway", "down", "client", "down_through", "client_through")
    }
    for _ in range(args.repeat):  # interleaved rounds, the best of each kept
        down, client = tree_cpu(downstream_pid), own_cpu()
        direct.append(asyncio.run(throughput(port_direct, args.messages, args.clients, data)))
        cost["down"].append((tree_cpu(downstream_pid) - down) / args.messages)
        cost["client"].append((own_cpu() - client) / args.messages)
        gateway, down, client = tree_cpu(gateway_pid), tree_cpu(downstream_pid), own_cpu()
        through.append(asyncio.run(throughput(port_gateway, args.messages, args.clients, data)))
        cost["gateway"].append((tree_cpu(gateway_pid) - gateway) / args.messages)
        cost["down_through"].append((tree_cpu(downstream_pid) - down) / args.messages)
        cost["client_through"].append((own_cpu() - client) / args.messages)
    best_direct, best_gateway = max(direct), max(through)
    ms = {key: 1000 * min(values) for key, values in cost.items()}
    straight = ms["down"] + ms["client"]
    return {
        "direct_msgs_per_s": round(best_direct, 1),
        "gateway_msgs_per_s": round(best_gateway, 1),
        "ratio": round(best_gateway / best_direct, 3),
        "gateway_cpu_ms_per_message": round(ms["gateway"], 3),
        "downstream_cpu_ms_per_message": round(ms["down"], 3),
        "client_cpu_ms_per_message": round(ms["client"], 3),
        "cpu_bound_ratio": round(
            straight / (ms["down_through"] + ms["client_through"] + ms["gateway"]), 3
        ),
        "gateway_cpu_budget_ms": round(
            max(0.0, straight / 0.8 - ms["down_through"] - ms["client_through"]), 3
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=1000, help="messages per round (1000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--size", type=int, default=4096, help="message size in octets (4096)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, best kept (2)")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections (1000)")
    parser.add_argument("--large-count", type=int, default=8, help="large messages at once (8)")
    parser.add_argument(
        "--large-size", type=int, default=20 * 2**20, help="octets of each large message (20 MB)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="the gateway's worker processes (serve --workers; default: the number of CPUs)",
    )
    parser.add_argument("--no-postfix", action="store_true", help="only the built-in sink")
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.clients, args.repeat, args.idle = 40, 10, 1, 50
        args.large_count, args.large_size = 2, 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.idle * 2 + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by the servers
    data = message(args.size)
    summary: dict[str, Any] = {
        "config": {
            "messages": args.messages,
            "clients": args.clients,
            "size": len(data),
            "repeat": args.repeat,
            "idle": args.idle,
            "workers": args.workers,
        },
        "downstreams": {},
    }
    with tempfile.TemporaryDirectory(prefix="mailwarden-bench-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        sink_port, gw_port = free_port(), free_port()
        with (
            mailwarden(
                "sink",
                "--listen",
                f"127.0.0.1:{sink_port}",
                "--maildir",
                str(folder / "sink"),
                "--no-fsync",
            ) as sink,
            mailwarden(
                "serve",
                "--config",
                str(gateway_config(folder, gw_port, sink_port)),
                "--dns-zone",
                str(zone_file(folder)),
                "--workers",
                str(args.workers),
            ) as gw,
        ):
            summary["downstreams"]["sink"] = compare(
                sink_port, gw_port, args, data, gw.pid, sink.pid
            )
            summary["idle_memory"] = asyncio.run(idle_memory(gw.pid, gw_port, args.idle))
            summary["large_memory"] = asyncio.run(
                large_memory(gw.pid, gw_port, args.large_count, args.large_size)
            )
        postfix = None if args.no_postfix else start_postfix(folder)
        if postfix is None:
            summary["downstreams"]["postfix"] = None
        else:
            try:
                pf_gw_port = free_port()
                config = gateway_config(folder, pf_gw_port, postfix.port)
                with mailwarden(
                    "serve", "--config", str(config), "--dns-zone", str(zone_file(folder)),
                    "--workers", str(args.workers),
                ) as pf_gw:  # fmt: skip
                    summary["downstreams"]["postfix"] = compare(
                        postfix.port, pf_gw_port, args, data, pf_gw.pid, postfix_pid(postfix)
                    )
            finally:
                postfix.stop()
    if args.json:
        print(json.dumps(summary))
        return 0
    config = summary["config"]
    print(
        f"{config['messages']} messages of {config['size']} octets per round, "
        f"{config['clients']} concurrent clients, best of {config['repeat']} rounds, "
        f"gateway with {config['workers']} worker process(es) (memory: all of them)"
    )
    for name, figures in summary["downstreams"].items():
        if figures is None:
            print(f"  {name:8} skipped (needs root and Postfix)")
            continue
        print(
            f"  {name:8} direct {figures['direct_msgs_per_s']:8.1f} msg/s   through the gateway "
            f"{figures['gateway_msgs_per_s']:8.1f} msg/s   ratio {figures['ratio']:.2f}   "
            f"gateway CPU {figures['gateway_cpu_ms_per_message']:.2f} ms/msg"
        )
        print(
            f"  {'':8} CPU per message: downstream {figures['downstream_cpu_ms_per_message']:.2f}"
            f" ms, clients {figures['client_cpu_ms_per_message']:.2f} ms; with the cores the "
            f"limit, the ratio is {figures['cpu_bound_ratio']:.2f}; 0.8 needs the gateway under "
            f"{figures['gateway_cpu_budget_ms']:.2f} ms/msg"
        )
    idle = summary["idle_memory"]
    print(
        f"  idle: {idle['connections']} connections, gateway RSS {idle['rss_before_mib']} MiB -> "
        f"{idle['rss_idle_mib']} MiB ({idle['kib_per_connection']} KiB per connection)"
    )
    large = summary["large_memory"]
    print(
        f"  large: {large['messages']} messages of {large['size_mib']} MiB at once in "
        f"{large['seconds']} s, gateway RSS {large['rss_before_mib']} MiB -> peak "
        f"{large['rss_peak_mib']} MiB (+{large['rise_mib']} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
