"""The lab's network: Linux network namespaces joined by veth pairs to one bridge.

Every host is a namespace named `<prefix>-<host>` with a loopback and one interface `eth0`;
the other end of its veth pair sits in the namespace `<prefix>-net`, enslaved to the bridge
`br0` there. Nothing is created in the machine's own namespace: each veth pair is made with
both ends already inside lab namespaces, and deleting the namespaces deletes the pairs. A
host's resolver is given by /etc/netns/<namespace>/resolv.conf, which `ip netns exec` mounts
over /etc/resolv.conf for the programs it starts there (Postfix reads it; our commands are
also given --dns-server).

`teardown(prefix)` undoes everything a run (or an interrupted run) left: the processes in each
namespace (`ip netns pids`: SIGTERM, then SIGKILL), the namespaces and the /etc/netns entries.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NETNS_ETC",
    "Host",
    "Network",
    "NetworkError",
    "check_prefix",
    "ip_program",
    "lab_namespaces",
    "namespaces_available",
    "remove_lab",
    "teardown",
]

NETNS_ETC = Path("/etc/netns")
SEARCH_PATH = f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}"
BRIDGE_HOST = "net"
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,7}\Z")  # short: interface names have 15 octets


class NetworkError(RuntimeError):
    """A namespace, link or address could not be made (the `ip` error is in the message)."""


def ip_program() -> str | None:
    return shutil.which("ip", path=SEARCH_PATH)


def namespaces_available(*, probe: bool = True) -> str | None:
    """None when this process can make network namespaces (`probe`: tried), else why not."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, veth pairs, /etc/netns)"
    if ip_program() is None:
        return "the lab needs `ip` (Debian package iproute2)"
    if not probe:
        return None
    probe_name = f"mwprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe_name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe_name], capture_output=True)
    return None


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True, slots=True)
class Host:
    """One machine of the lab: its short name and its addresses (the first is its own)."""

    name: str
    addresses: tuple[str, ...]

    @property
    def address(self) -> str:
        return self.addresses[0]


def check_prefix(prefix: str) -> str:
    """The prefix, if it can name a lab: 1-8 lower-case letters and digits, a letter first
    (interface names are short, and `teardown` must never match anything but a lab's)."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"lab prefix {prefix!r}: 1-8 lower-case letters and digits")
    return prefix


def lab_namespaces(prefix: str) -> list[str]:
    """The namespaces of a lab with this prefix that exist now."""
    check_prefix(prefix)
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return sorted(name for name in names if name.startswith(f"{prefix}-"))


def _pids(namespace: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(word) for word in out.stdout.split() if word.isdigit()]


def _signal_all(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _kill_namespace_processes(namespaces: Sequence[str], grace: float = 5.0) -> None:
    """SIGTERM to every process in the namespaces, SIGKILL to what is left after `grace`."""
    _signal_all([pid for ns in namespaces for pid in _pids(ns)], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(_pids(ns) for ns in namespaces):
            return
        time.sleep(0.1)
    _signal_all([pid for ns in namespaces for pid in _pids(ns)], signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_pids(ns) for ns in namespaces):
        time.sleep(0.1)


def teardown(prefix: str) -> list[str]:
    """Remove every trace of the lab `prefix` from the machine; the namespaces removed."""
    namespaces = lab_namespaces(prefix)
    _kill_namespace_processes(namespaces)
    for namespace in namespaces:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
    if NETNS_ETC.is_dir():
        for entry in NETNS_ETC.iterdir():
            if entry.name.startswith(f"{prefix}-"):
                shutil.rmtree(entry, ignore_errors=True)
        with contextlib.suppress(OSError):
            NETNS_ETC.rmdir()  # only when empty: other software may keep entries there
    return namespaces


def remove_lab(prefix: str, root: Path) -> list[str]:
    """`teardown(prefix)`, and the lab directory too (`make lab-clean`)."""
    removed = teardown(prefix)
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    return removed


class Network:
    """The namespaces of one lab: `create()` builds them, `teardown()` removes them."""

    def __init__(self, prefix: str, hosts: Sequence[Host], *, nameserver: str, plen: int = 16):
        self.prefix = check_prefix(prefix)
        self.hosts = {host.name: host for host in hosts}
        self.nameserver = nameserver
        self.plen = plen

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def create(self) -> None:
        bridge = self.namespace(BRIDGE_HOST)
        _ip("netns", "add", bridge)
        _ip("-n", bridge, "link", "set", "dev", "lo", "up")
        _ip("-n", bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", bridge, "link", "set", "dev", "br0", "up")
        for host in self.hosts.values():
            namespace = self.namespace(host.name)
            _ip("netns", "add", namespace)
            _ip("-n", namespace, "link", "set", "dev", "lo", "up")
            # both ends made inside lab namespaces: the machine's own never sees them
            _ip(
                "link", "add", "eth0", "netns", namespace,
                "type", "veth", "peer", "name", host.name, "netns", bridge,
            )  # fmt: skip
            _ip("-n", bridge, "link", "set", "dev", host.name, "master", "br0")
            _ip("-n", bridge, "link", "set", "dev", host.name, "up")
            for address in host.addresses:
                _ip("-n", namespace, "addr", "add", f"{address}/{self.plen}", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "dev", "eth0", "up")
            etc = NETNS_ETC / namespace
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(
                f"# the lab's DNS server (written by the mailwarden lab)\n"
                f"nameserver {self.nameserver}\noptions timeout:2 attempts:2\n"
            )

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the host's namespace."""
        return ["ip", "netns", "exec", self.namespace(host), *argv]

    def run(
        self, host: str, argv: Sequence[str], *, timeout: float = 60, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.command(host, argv), capture_output=True, timeout=timeout, input=input
        )

    def popen(self, host: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(host, argv), **kwargs)  # type: ignore[call-overload, no-any-return]

    def teardown(self) -> list[str]:
        return teardown(self.prefix)
