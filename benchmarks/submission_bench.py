"""Submission throughput: messages per second through `mailwarden submit` (TLS, AUTH, sender
checks, rate limits, DKIM signing with RSA-2048 and Ed25519, relaying before-queue) against
the same clients sending straight to the smarthost, in the same run.

Run from the project root::

    python benchmarks/submission_bench.py                # default sizes (about a minute)
    python benchmarks/submission_bench.py --quick --json # small sizes, machine-readable

The smarthost is a private Postfix when Postfix is installed and we are root, else the
built-in sink (`mailwarden sink`). `mailwarden submit` runs as a separate process with its
default argon2id cost (the --quick run uses a cheap one) and its auth cache on. The clients
are asyncio tasks in this process: --clients of them (50) each send one message a
connection: straight to the smarthost (EHLO, MAIL, RCPT, DATA, QUIT, in clear and without
AUTH, as Postfix accepts from loopback), then to submission's port 465 (TLS from the first
octet, EHLO, AUTH PLAIN as one of --users users, MAIL, RCPT, DATA, QUIT), round after round,
the best round kept. The ratio submission/direct is the share of the smarthost's throughput
left with submission in front of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mailwarden.dkim import generate_key  # noqa: E402
from mailwarden.dkim.keygen import private_key_pem  # noqa: E402
from mailwarden.settings import Argon2Settings  # noqa: E402
from mailwarden.submission import Passwords, UserStore  # noqa: E402

RCPT = "bob@example.net"  # a user the private Postfix knows
PASSWORD = "bench password"
BODY_LINE = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"


def message(size: int, sender: str) -> bytes:
    head = f"From: {sender}\r\nTo: {RCPT}\r\nSubject: bench\r\n\r\n".encode()
    lines = max(1, (size - len(head)) // len(BODY_LINE))
    return head + BODY_LINE * lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def prepare(folder: Path, smarthost: int, ports: tuple[int, int], args: argparse.Namespace) -> Path:
    """Keys, users and the configuration of the submission server."""
    argon2 = Argon2Settings(1, 8, 1) if args.quick else Argon2Settings()
    keys = folder / "keys"
    keys.mkdir()
    (keys / "rsa.pem").write_bytes(private_key_pem(generate_key("rsa", 2048)))
    (keys / "ed.pem").write_bytes(private_key_pem(generate_key("ed25519")))
    data = folder / "data"
    users = UserStore(data / "users.sqlite3")
    hashed = Passwords(argon2).hash(PASSWORD)  # one hash, the same cost as a login
    for n in range(args.users):
        users.add(f"user{n}@a.example", hashed)
    users.close()
    path = folder / "submission.toml"
    path.write_text(
        f"""
[gateway]
hostname = "msa.a.example"
data_dir = "{data}"
[dnsbl]
use = []
[submission]
listen = "127.0.0.1:{ports[0]}"
listen_tls = "127.0.0.1:{ports[1]}"
smarthost = "127.0.0.1:{smarthost}"
log_file = ""
[submission.argon2]
time_cost = {argon2.time_cost}
memory_cost = {argon2.memory_cost}
parallelism = {argon2.parallelism}
[submission.limits]
max_connections = 5000
max_connections_per_client = 5000
[submission.rate.user]
messages_per_minute = 0
messages_per_hour = 0
messages_per_day = 0
recipients_per_day = 0
first_time_recipients_per_day = 0
[submission.rate.client]
messages_per_minute = 0
messages_per_hour = 0
messages_per_day = 0
recipients_per_day = 0
[submission.rate.domain]
messages_per_minute = 0
messages_per_hour = 0
messages_per_day = 0
recipients_per_day = 0
[submission.compromise]
volume_floor = 100000000
[[signing.keys]]
domain = "a.example"
selector = "rsa"
key_file = "{keys / "rsa.pem"}"
[[signing.keys]]
domain = "a.example"
selector = "ed"
key_file = "{keys / "ed.pem"}"
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


async def send_one(port: int, data: bytes, sender: str, tls: ssl.SSLContext | None) -> None:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="msa.a.example" if tls else None
    )
    try:
        await expect(reader, 220)
        steps: list[tuple[bytes, int]] = [(b"EHLO laptop.a.example", 250)]
        if tls is not None:
            token = base64.b64encode(f"\0{sender}\0{PASSWORD}".encode())
            steps.append((b"AUTH PLAIN " + token, 235))
        steps += [
            (f"MAIL FROM:<{sender}>".encode(), 250),
            (f"RCPT TO:<{RCPT}>".encode(), 250),
            (b"DATA", 354),
        ]
        for command, code in steps:
            writer.write(command + b"\r\n")
            await expect(reader, code)
        writer.write(data + b".\r\n")
        await expect(reader, 250)
        writer.write(b"QUIT\r\n")
        await expect(reader, 221)
    finally:
        writer.close()
        with suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def throughput(port: int, args: argparse.Namespace, tls: ssl.SSLContext | None) -> float:
    """Messages per second with `args.clients` concurrent senders."""
    remaining = args.messages
    sent = 0

    async def worker() -> None:
        nonlocal remaining, sent
        while remaining > 0:
            remaining -= 1
            sender = f"user{sent % args.users}@a.example"
            sent += 1
            await send_one(port, message(args.size, sender), sender, tls)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.clients)))
    return args.messages / (time.perf_counter() - started)


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def start_postfix(folder: Path) -> Any:
    """The tests' private Postfix, when this machine can run one; else None."""
    if os.geteuid() != 0 or not shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin"):
        return None
    sys.path.insert(0, str(ROOT))
    from tests.gateway.postfix import start_postfix as start

    root = folder / "postfix"
    root.mkdir()
    return start(root)


def compare(smarthost: int, submission: int, args: argparse.Namespace) -> dict[str, Any]:
    direct: list[float] = []
    through: list[float] = []
    # a warm-up round logs every user in once (argon2), as a long-running server would have
    asyncio.run(
        throughput(
            submission,
            argparse.Namespace(**{**vars(args), "messages": args.users, "clients": 1}),
            client_tls(),
        )
    )
    for _ in range(args.repeat):
        direct.append(asyncio.run(throughput(smarthost, args, None)))
        through.append(asyncio.run(throughput(submission, args, client_tls())))
    best_direct, best_submission = max(direct), max(through)
    return {
        "direct_msgs_per_s": round(best_direct, 1),
        "submission_msgs_per_s": round(best_submission, 1),
        "ratio": round(best_submission / best_direct, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=1000, help="messages per round (1000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--users", type=int, default=10, help="distinct users (10)")
    parser.add_argument("--size", type=int, default=4096, help="message size in octets (4096)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, best kept (2)")
    parser.add_argument("--no-postfix", action="store_true", help="the built-in sink only")
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.clients, args.repeat, args.users = 40, 10, 1, 2
    summary: dict[str, Any] = {
        "config": {
            "messages": args.messages,
            "clients": args.clients,
            "users": args.users,
            "size": args.size,
            "repeat": args.repeat,
        }
    }
    with tempfile.TemporaryDirectory(prefix="mailwarden-bench-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        postfix = None if args.no_postfix else start_postfix(folder)
        try:
            with contextlib_smarthost(folder, postfix) as (name, smarthost):
                ports = (free_port(), free_port())
                config = prepare(folder, smarthost, ports, args)
                with mailwarden("submit", "--config", str(config), "--dns-zone", os.devnull):
                    summary["smarthost"] = name
                    summary.update(compare(smarthost, ports[1], args))
        finally:
            if postfix is not None:
                postfix.stop()
    if args.json:
        print(json.dumps(summary))
        return 0
    config = summary["config"]
    print(
        f"{config['messages']} messages of {config['size']} octets per round, "
        f"{config['clients']} concurrent clients, {config['users']} users, "
        f"best of {config['repeat']} rounds, smarthost: {summary['smarthost']}"
    )
    print(
        f"  straight to the smarthost {summary['direct_msgs_per_s']:8.1f} msg/s   "
        f"through submission (TLS, AUTH, DKIM x2) {summary['submission_msgs_per_s']:8.1f} msg/s"
        f"   ratio {summary['ratio']:.2f}"
    )
    return 0


@contextmanager
def contextlib_smarthost(folder: Path, postfix: Any) -> Iterator[tuple[str, int]]:
    """Postfix when it runs, else the built-in sink in a subprocess."""
    if postfix is not None:
        yield "postfix", int(postfix.port)
        return
    port = free_port()
    with mailwarden(
        "sink", "--listen", f"127.0.0.1:{port}", "--maildir", str(folder / "sink"), "--no-fsync"
    ):
        yield "sink", port


if __name__ == "__main__":
    sys.exit(main())
