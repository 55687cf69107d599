"""The milter's added time per message as Postfix sees it: the same clients and messages sent
to one private Postfix on two ports, one without milter and one with `mailwarden milter`
(every check on: iprev, HELO, DNS lists, SPF, DKIM, DMARC, ARC, policy, greylisting store,
DMARC report recording; its DNS answered from a static zone).

Run from the project root (root and Postfix needed, as for the Postfix tests)::

    python benchmarks/milter_bench.py                # 50 clients, 1000 messages a round
    python benchmarks/milter_bench.py --quick --json # small sizes, machine-readable summary
    python benchmarks/milter_bench.py --workers 1    # the milter in one process

The clients are asyncio tasks in this process: --clients of them (50) each send messages one
connection at a time (EHLO, MAIL, RCPT, DATA, QUIT), rounds alternating between the two ports,
the best round of each kept. Per message, the time from connecting to Postfix's 250 after the
data is measured; the milter's added time is the difference of the medians (and of the 95th
percentiles), and the throughput ratio with/without is the share Postfix keeps with the milter
(1.0: no cost). Every message is DKIM-signed (Ed25519) by a domain with SPF and DMARC
p=reject, so the checks do their full work and pass. The milter runs --workers processes
(`mailwarden milter --workers N`; default: the number of CPUs), as it does by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

from mailwarden.cli.workers import default_workers  # noqa: E402
from mailwarden.dkim import sign  # noqa: E402
from mailwarden.dkim.keygen import key_record  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from gateway_bench import tree_cpu  # noqa: E402

RCPT = "bob@example.net"  # a user the private Postfix knows
KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
BODY_LINE = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(size: int) -> bytes:
    head = (
        b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: bench\r\n"
        b"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\n\r\n"
    )
    text = head + BODY_LINE * max(1, (size - len(head)) // len(BODY_LINE))
    return sign(text, "example.com", "bench", KEY) + text


def zone_file(folder: Path) -> Path:
    """The DNS the milter sees (offline): a clean, signed sender at 127.0.0.1, and the
    default DNS lists' RFC 5782 test entries, so their health check passes."""
    record = key_record(KEY)
    quoted = " ".join(f'"{record[i : i + 200]}"' for i in range(0, len(record), 200))
    path = folder / "bench.zone"
    path.write_text(
        f"""\
$ORIGIN example.com.
@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
bench._domainkey IN TXT {quoted}
_dmarc IN TXT "v=DMARC1; p=reject"
$ORIGIN bench.example.
client IN A 127.0.0.1
1.0.0.127.in-addr.arpa. IN PTR client.bench.example.
2.0.0.127.bl.spamcop.net. IN A 127.0.0.2
2.0.0.127.psbl.surriel.com. IN A 127.0.0.2
"""
    )
    return path


def milter_config(folder: Path, port: int, extra: str = "") -> Path:
    path = folder / "milter.toml"
    path.write_text(
        f"""
[gateway]
hostname = "mx.bench.example"
log_file = ""
data_dir = "{folder / "data"}"
[milter]
listen = "127.0.0.1:{port}"
max_connections = 1000
{extra}"""
    )
    return path


@contextmanager
def mailwarden(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`mailwarden ARGS --json` in a subprocess, ready when it printed its address."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwarden", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
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


async def send_one(port: int, data: bytes) -> float:
    """One message in its own connection; seconds from connecting to the 250 after DATA."""
    started = time.perf_counter()
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
        elapsed = time.perf_counter() - started
        writer.write(b"QUIT\r\n")
        await expect(reader, 221)
        return elapsed
    finally:
        writer.close()
        await writer.wait_closed()


async def round_(port: int, messages: int, clients: int, data: bytes) -> dict[str, float]:
    """Throughput and per-message times with `clients` concurrent senders."""
    remaining = messages
    times: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            times.append(await send_one(port, data))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - started
    times.sort()
    return {
        "msgs_per_s": messages / wall,
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": times[min(len(times) - 1, int(len(times) * 0.95))] * 1000,
    }


def start_postfix(folder: Path, milter_port: int) -> Any:
    """The tests' private Postfix with a second smtpd port that uses the milter; None when
    this machine cannot run Postfix."""
    if os.geteuid() != 0 or not shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin"):
        return None
    sys.path.insert(0, str(ROOT))
    from tests.gateway.postfix import start_postfix as start

    root = folder / "postfix"
    root.mkdir()
    extra = """
milter_protocol = 6
milter_default_action = tempfail
default_process_limit = 200
smtpd_client_connection_count_limit = 0
"""
    postfix = start(root, extra)
    port = free_port()
    with open(postfix.config_dir / "master.cf", "a") as master:
        master.write(
            f"127.0.0.1:{port} inet n - n - - smtpd\n"
            f"  -o smtpd_milters=inet:127.0.0.1:{milter_port}\n"
        )
    postfix._run("reload")
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("postfix did not open its milter port") from None
            time.sleep(0.05)
    postfix.milter_port = port
    return postfix


def compare(
    direct: int, milter: int, args: argparse.Namespace, data: bytes, milter_pid: int
) -> dict[str, Any]:
    """Interleaved rounds without and with the milter, the best of each kept; the milter's
    CPU time per message (all its processes, from /proc: less noisy than the throughput on
    a shared machine), the least of its rounds."""
    without: list[dict[str, float]] = []
    with_: list[dict[str, float]] = []
    cpu: list[float] = []
    for _ in range(args.repeat):
        without.append(asyncio.run(round_(direct, args.messages, args.clients, data)))
        before = tree_cpu(milter_pid)
        with_.append(asyncio.run(round_(milter, args.messages, args.clients, data)))
        cpu.append((tree_cpu(milter_pid) - before) / args.messages)
    a = max(without, key=lambda r: r["msgs_per_s"])
    b = max(with_, key=lambda r: r["msgs_per_s"])
    return {
        "without_msgs_per_s": round(a["msgs_per_s"], 1),
        "with_msgs_per_s": round(b["msgs_per_s"], 1),
        "ratio": round(b["msgs_per_s"] / a["msgs_per_s"], 3),
        "without_median_ms": round(a["median_ms"], 2),
        "with_median_ms": round(b["median_ms"], 2),
        "added_median_ms": round(b["median_ms"] - a["median_ms"], 2),
        "without_p95_ms": round(a["p95_ms"], 2),
        "with_p95_ms": round(b["p95_ms"], 2),
        "added_p95_ms": round(b["p95_ms"] - a["p95_ms"], 2),
        "milter_cpu_ms_per_message": round(1000 * min(cpu), 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=1000, help="messages per round (1000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--size", type=int, default=4096, help="message size in octets (4096)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, best kept (2)")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="the milter's worker processes (milter --workers; default: the number of CPUs)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.clients, args.repeat = 40, 10, 1
    data = message(args.size)
    summary: dict[str, Any] = {
        "config": {
            "messages": args.messages,
            "clients": args.clients,
            "size": len(data),
            "repeat": args.repeat,
            "workers": args.workers,
        },
        "postfix": None,
    }
    with tempfile.TemporaryDirectory(prefix="mailwarden-milter-bench-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # Postfix's users must be able to enter it
        milter_port = free_port()
        config = milter_config(folder, milter_port)
        zone = zone_file(folder)
        with mailwarden(
            "milter", "--config", str(config), "--dns-zone", str(zone),
            "--workers", str(args.workers),
        ) as milter:  # fmt: skip
            postfix = start_postfix(folder, milter_port)
            if postfix is not None:
                try:
                    summary["postfix"] = compare(
                        postfix.port, postfix.milter_port, args, data, milter.pid
                    )
                finally:
                    postfix.stop()
    if args.json:
        print(json.dumps(summary))
        return 0
    config_ = summary["config"]
    print(
        f"{config_['messages']} signed messages of {config_['size']} octets per round, "
        f"{config_['clients']} concurrent clients, best of {config_['repeat']} rounds, "
        f"the milter in {config_['workers']} worker process(es)"
    )
    figures = summary["postfix"]
    if figures is None:
        print("  skipped (needs root and Postfix)")
        return 0
    print(
        f"  Postfix alone       {figures['without_msgs_per_s']:8.1f} msg/s   median "
        f"{figures['without_median_ms']:7.2f} ms   p95 {figures['without_p95_ms']:7.2f} ms"
    )
    print(
        f"  Postfix + milter    {figures['with_msgs_per_s']:8.1f} msg/s   median "
        f"{figures['with_median_ms']:7.2f} ms   p95 {figures['with_p95_ms']:7.2f} ms"
    )
    print(
        f"  ratio {figures['ratio']:.2f} of the throughput kept; added per message: "
        f"median {figures['added_median_ms']:.2f} ms, p95 {figures['added_p95_ms']:.2f} ms; "
        f"milter CPU {figures['milter_cpu_ms_per_message']:.2f} ms/msg"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
