"""A private NSD (NLnet Labs' authoritative server) on a free loopback port.

`start_nsd(folder, zones)` writes the zone files and an nsd.conf into `folder` (no privilege
drop, no chroot, no control socket, IPv4 loopback only), starts `nsd -d` on a port free for
both UDP and TCP, and returns once it answers. Tests and benchmarks/dns_bench.py use it; the
Debian package `nsd` provides the program (tools/system-deps.sh installs it for `make test`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SEARCH_PATH = f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}"

CONFIG = """\
server:
    ip-address: 127.0.0.1
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{root}"
    database: ""
    zonelistfile: "{root}/zone.list"
    xfrdfile: "{root}/xfrd.state"
    xfrdir: "{root}"
    pidfile: "{root}/nsd.pid"
    logfile: "{root}/nsd.log"
    server-count: 1
    verbosity: 0
    hide-version: yes
    reuseport: no
    rrl-ratelimit: 0  # no response rate limiting: tests and benchmarks ask fast from one host
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
"""
ZONE_ENTRY = """\
zone:
    name: "{name}"
    zonefile: "{file}"
"""


def _die_with_parent() -> None:
    """In the child before exec: nsd gets SIGTERM if the process that started it dies (Linux
    PR_SET_PDEATHSIG), so a killed test run or benchmark leaves no server behind."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def nsd_program() -> str | None:
    return shutil.which("nsd", path=SEARCH_PATH)


@dataclass
class NSD:
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        path = self.root / "nsd.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 (checked together, then released)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def _answers(port: int, apex: str) -> bool:
    """Does the server answer a query for the apex SOA (any response counts)?"""
    labels = b"".join(bytes((len(x),)) + x.encode() for x in apex.strip(".").split(".") if x)
    query = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x06\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(query, ("127.0.0.1", port))
            data = sock.recv(4096)
        except OSError:
            return False
    return data[:2] == b"\x42\x42"


def start_nsd(folder: Path, zones: dict[str, str], *, wait: float = 20.0, extra: str = "") -> NSD:
    """Serve `zones` (apex -> master file text) from a private nsd; RuntimeError if it fails.
    `extra`: more nsd.conf sections (such as `dnstap:`), written before the zones."""
    program = nsd_program()
    if program is None:
        raise RuntimeError("nsd is not installed (Debian package nsd)")
    root = folder.resolve()
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, (apex, text) in enumerate(zones.items()):
        file = f"zone{index}.db"
        (root / file).write_text(text)
        entries.append(ZONE_ENTRY.format(name=apex.strip(".") + ".", file=file))
    for _ in range(5):  # another process may take the port between the check and nsd's bind
        port = _free_port()
        config = CONFIG.format(port=port, root=root) + extra + "".join(entries)
        (root / "nsd.conf").write_text(config)
        process = subprocess.Popen(
            [program, "-d", "-c", str(root / "nsd.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        server = NSD(root, port, process)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port, next(iter(zones))):
                return server
            time.sleep(0.05)
        server.stop()
    raise RuntimeError(f"nsd did not start: {server.log()[-2000:]}")
