"""The lab: build the hosts, run the scenarios, read back what happened, take it all down.

`Lab(root, prefix)` is used as a context manager: entering builds the network (lab.netns),
writes every host's configuration under `root`, starts the programs inside their namespaces
and waits until each listens; leaving stops everything (processes by namespace, namespaces,
/etc/netns entries), whatever happened meanwhile. `Lab.send(scenario)` runs one scenario and
returns its `Observation`.

Hosts and their programs (each under root/<host>/):
- dns: nsd, authoritative for every lab zone, logging each query and answer over dnstap;
- a: `mailwarden submit` (the MSA, :587; Alice's account made with `mailwarden user add`, its
  DKIM keys with `mailwarden dkim rotate`, active once DNS shows them) relaying to Postfix
  (the MTA), which also takes mail for a.example (Alice's Maildir, where bounces land);
- b: `mailwarden serve` (the MX) relaying before-queue to Postfix (Bob's Maildir);
- list: `mailwarden serve` (the list's MX) relaying to lab.listhost (the list manager);
- fwd: `mailwarden serve` with `[forwarding]` (aliases, SRS into srs.fwd.d.example, an ARC
  seal) relaying to Postfix (the forwarder's MTA), which delivers and bounces;
- alice and zombie: nothing runs there; swaks is run there for each scenario.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from mailwarden.dkim import generate_key, key_record, private_key_pem

from . import DEFAULT_DIR, DEFAULT_PREFIX
from .dnstap import Collector, exchanges
from .netns import Network, lab_namespaces, teardown
from .postfix import write_postfix
from .scenarios import ALICE, PASSWORD, LogRecord, Observation, Scenario
from .topology import (
    A_MTA,
    ADDRESSES,
    B_MX,
    BLOCKLIST,
    FWD_MX,
    HOSTS,
    LIST_MX,
    NAMESERVER,
    SRS_DOMAIN,
    TTL,
    DKIMKey,
    Zones,
)

__all__ = ["Lab", "LabError", "signals_raise"]

PROJECT = Path(__file__).resolve().parent.parent
SEARCH_PATH = f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}"
INTERNAL_PORT = 10025  # each host's Postfix (or list manager) behind its mailwarden
FORWARDS = {  # the forwarder's aliases: Bob's old address, and one whose target has left
    "bob@fwd.d.example": "bob@b.example",
    "robert@fwd.d.example": "robert@b.example",
}
READY_TIMEOUT = 90.0  # seconds for every program to listen (a busy 2-core machine)
OUTCOME_TIMEOUT = 30.0  # seconds for a message to be delivered or bounced
CACHE_SECONDS = TTL + 0.3  # mailwarden keeps answers at least 5 s (dns/cache.py min_ttl)


# One DNS query (RFC 1035 §4.1) to argv[1]:53 for TXT argv[2]; run with `python -I -S`.
MARKER_QUERY = """
import socket, struct, sys
name = b"".join(bytes((len(x),)) + x.encode() for x in sys.argv[2].split("."))
query = struct.pack("!HHHHHH", 0x4C41, 0x0100, 1, 0, 0, 0) + name + b"\\0\\0\\x10\\0\\1"
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.settimeout(2)
    sock.sendto(query, (sys.argv[1], 53))
    sock.recv(4096)
"""


class LabError(RuntimeError):
    """The lab could not be built or run (the message says which host and why)."""


def _die_with_parent() -> None:
    """In a child before exec: SIGTERM when the lab process dies (Linux PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def program(name: str) -> str:
    found = shutil.which(name, path=SEARCH_PATH)
    if found is None:
        raise LabError(f"{name} is not installed (make system-deps installs it)")
    return found


def mailwarden_program() -> str:
    """The mailwarden command of the Python running the lab (the project's .venv)."""
    beside = Path(sys.executable).parent / "mailwarden"
    if beside.exists():
        return str(beside)
    return program("mailwarden")


@dataclass
class Service:
    """A long-running program of one host (its output files, its process)."""

    host: str
    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    announces: bool  # prints a JSON line with "listen" once it listens

    def failure(self) -> str:
        text = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return text.strip()[-2000:] or f"exit status {self.process.returncode}"


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


class Lab:
    """One run of the lab (see the module docstring)."""

    def __init__(self, root: Path = DEFAULT_DIR, prefix: str = DEFAULT_PREFIX) -> None:
        self.root = root.resolve()
        self.prefix = prefix
        self.net = Network(prefix, HOSTS, nameserver=NAMESERVER)
        self.services: list[Service] = []
        self.collector: Collector | None = None
        self.mailwarden = mailwarden_program()
        self.postfix = program("postfix")
        self._last_scenario_end = 0.0
        self._markers = 0
        self._commands: list[subprocess.Popen[bytes]] = []  # short-lived commands running

    # -- building --------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        if lab_namespaces(self.prefix):
            raise LabError(
                f"namespaces {self.prefix}-* exist: a lab is running or was interrupted "
                f"(`make lab-clean` removes it)"
            )
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything and remove the network (the lab directory stays, for reading)."""
        if self.collector is not None:
            self.collector.close()
            self.collector = None
        teardown(self.prefix)
        for process in self._commands:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=5)
        self._commands.clear()
        for service in self.services:
            with contextlib.suppress(OSError):
                service.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=5)
        self.services.clear()

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _build(self) -> None:
        """Everything up, in the order things depend on one another: a.example's keys before
        the zones that publish them; the network and the DNS server before anything that
        looks something up (the gateways test their block list at start-up, the MSA's keys
        start signing once DNS shows them); the MSA once Alice's account exists."""
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.root.chmod(0o755)
        for host in ADDRESSES:
            self.path(host).mkdir(mode=0o755)
        self._write_msa_config()
        # the slowest to start (Python programs; an argon2 hash) go first, side by side
        user = self._command(
            [self.mailwarden, "user", "add", ALICE, "--password-stdin", *self._msa], PASSWORD
        )
        rotate = self._command(
            [self.mailwarden, "dkim", "rotate", "--domain", "a.example", "--json", *self._msa]
        )
        keys = self._static_keys() + _published(self._finish(rotate, "dkim rotate --domain"))
        self.net.create()
        self.collector = Collector(self.path("dns", "dnstap.sock"))
        self._start_nsd(Zones(keys=keys).render())
        postfixes = self._start_postfixes()
        self._wait_nsd()
        self._start_gateways()
        pause(0)
        advance = subprocess.Popen(
            self.net.command(
                "a", [self.mailwarden, "dkim", "rotate", "--advance", "--json", *self._msa]
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self._commands.append(advance)
        activated = _activated(self._finish(advance, "dkim rotate --advance"))
        if len(activated) != 2:
            raise LabError(f"a.example's keys did not become active: {activated}")
        self._finish(user, "user add")
        self._spawn("a", "msa", [self.mailwarden, "submit", "--json", *self._msa])
        for host, process in postfixes.items():
            out, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise LabError(f"postfix on {host}: {out.decode(errors='replace')[-2000:]}")
        self._wait_ready()

    @property
    def _msa(self) -> list[str]:
        return ["--config", str(self.path("a", "msa.toml"))]

    def _command(self, argv: list[str], stdin: str = "") -> subprocess.Popen[bytes]:
        """A mailwarden command that needs no network, run outside the lab's namespaces
        (ended by `close` if the run stops first)."""
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        assert process.stdin is not None
        process.stdin.write(stdin.encode())
        process.stdin.close()
        process.stdin = None  # communicate() must not flush a closed pipe
        self._commands.append(process)
        return process

    @staticmethod
    def _finish(process: subprocess.Popen[bytes], what: str) -> bytes:
        out, err = process.communicate(timeout=120)
        pause(0)
        if process.returncode != 0:
            raise LabError(f"mailwarden {what}: {err.decode(errors='replace').strip()[-2000:]}")
        return out

    def _static_keys(self) -> list[DKIMKey]:
        """The keys that are not rotated: the ARC keys of the list and of the forwarder (RSA:
        RFC 8617 allows only rsa-sha256). a.example's DKIM keys come from `dkim rotate`."""
        keys = []
        for folder, domain in (("list", "lists.c.example"), ("fwd", "fwd.d.example")):
            key = generate_key("rsa")
            path = self.path(folder, f"arc.{domain}.pem")
            path.write_bytes(private_key_pem(key))
            path.chmod(0o600)
            keys.append(DKIMKey(domain, "arc", key_record(key)))
        return keys

    def _spawn(
        self,
        host: str,
        name: str,
        argv: list[str],
        *,
        cwd: Path | None = None,
        announces: bool = True,
    ) -> Service:
        folder = self.path(host)
        stdout, stderr = folder / f"{name}.out", folder / f"{name}.err"
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            process = subprocess.Popen(
                self.net.command(host, argv),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                preexec_fn=_die_with_parent,
            )
        service = Service(host, name, process, stdout, stderr, announces)
        self.services.append(service)
        return service

    def _start_nsd(self, zones: dict[str, str]) -> None:
        root = self.path("dns")
        entries = []
        for index, (apex, text) in enumerate(zones.items()):
            (root / f"zone{index}.db").write_text(text)
            entries.append(f'zone:\n    name: "{apex}."\n    zonefile: "zone{index}.db"\n')
        (root / "nsd.conf").write_text(
            f"""\
server:
    ip-address: {NAMESERVER}
    port: 53
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
    verbosity: 1
    hide-version: yes
    reuseport: no
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
dnstap:
    dnstap-enable: yes
    dnstap-socket-path: "{root}/dnstap.sock"
    dnstap-send-identity: yes
    dnstap-identity: "ns.example"
    dnstap-log-auth-query-messages: yes
    dnstap-log-auth-response-messages: yes
remote-control:
    control-enable: no
"""
            + "".join(entries)
        )
        self._spawn(
            "dns", "nsd", [program("nsd"), "-d", "-c", str(root / "nsd.conf")], announces=False
        )

    def _start_postfixes(self) -> dict[str, subprocess.Popen[bytes]]:
        """Write each MTA's configuration and start them together (`postfix start` returns
        once its master daemon listens)."""
        a = ADDRESSES["a"][0]
        configs = {
            # a.example's MTA: mail from the MSA (loopback) goes out; mail for a.example
            # (bounces to Alice) comes in on its public address
            "a": write_postfix(
                self.path("a", "postfix"),
                hostname=A_MTA,
                listeners=[(a, 25), ("127.0.0.1", INTERNAL_PORT)],
                mailboxes={"a.example": ["alice", "postmaster"]},
                interfaces=["127.0.0.1", a],
            ),
            # Bob's mailbox, reachable only through the MX on the same host
            "b": write_postfix(
                self.path("b", "postfix"),
                hostname="mailbox.b.example",
                listeners=[("127.0.0.1", INTERNAL_PORT)],
                mailboxes={"b.example": ["bob", "postmaster"]},
                interfaces=["127.0.0.1"],
            ),
            # the forwarder's MTA: what the MX forwards leaves from here; its public address
            # belongs to the MX, so a bounce sent there is not a loop to itself
            # (named apart from the MX, whose greeting it would take for its own, a loop, when
            # it sends a bounce to the SRS domain; it says HELO as the host, mx.fwd.d.example)
            "fwd": write_postfix(
                self.path("fwd", "postfix"),
                hostname="mta.fwd.d.example",
                listeners=[("127.0.0.1", INTERNAL_PORT)],
                mailboxes={},
                interfaces=["127.0.0.1"],
                extra=f"smtp_bind_address = {ADDRESSES['fwd'][0]}\nsmtp_helo_name = {FWD_MX}\n",
            ),
        }
        return {
            host: subprocess.Popen(
                self.net.command(host, [self.postfix, "-c", str(etc), "start"]),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for host, etc in configs.items()
        }

    def _wait_nsd(self) -> None:
        log = self.path("dns", "nsd.log")
        deadline = time.monotonic() + READY_TIMEOUT
        while not (log.exists() and "nsd started" in log.read_text(errors="replace")):
            for service in self.services:
                if service.process.poll() is not None:
                    raise LabError(f"{service.name} stopped: {service.failure()}")
            if time.monotonic() > deadline:
                raise LabError(f"nsd did not start: {log.read_text(errors='replace')[-2000:]}")
            pause(0.05)

    def _common_toml(self, host: str, hostname: str) -> str:
        return f"""\
[dns]
servers = ["{NAMESERVER}"]
timeout = 2.0
retries = 1

[gateway]
hostname = "{hostname}"
data_dir = "{self.path(host, "data")}"
log_file = "{self.path(host, "transactions.jsonl")}"
"""

    def _write_msa_config(self) -> None:
        """The MSA's settings; its DKIM keys are rotated ones, in <data_dir>/dkim."""
        a = ADDRESSES["a"][0]
        self.path("a", "msa.toml").write_text(
            self._common_toml("a", A_MTA)
            + f"""
[submission]
listen = "{a}:587"
listen_tls = ""
hostname = "{A_MTA}"
smarthost = "127.0.0.1:{INTERNAL_PORT}"
log_file = "{self.path("a", "transactions.jsonl")}"

[dnsbl]
use = []

[submission.argon2]
# OWASP's minimum for argon2id (the default costs more): the lab hashes one password
time_cost = 2
memory_cost = 19456
parallelism = 1
"""
        )

    def _gateway_toml(self, host: str, hostname: str, domains: list[str], extra: str) -> Path:
        path = self.path(host, "mx.toml")
        path.write_text(
            self._common_toml(host, hostname)
            + f"""\
listen = "{ADDRESSES[host][0]}:25"
local_domains = {_toml_list(domains)}
relay_to = "127.0.0.1:{INTERNAL_PORT}"
greet_pause = 0.5

[dnsbl]
use = []

[[dnsbl.lists]]
name = "lab"
zone = "{BLOCKLIST}"
kind = "ip"
type = "block"
codes = "127.0.0.2=RBL_LAB_LISTED:10.0"
ipv6 = false

[policy]
hard_reject = ["RBL_LAB_LISTED"]
{extra}"""
        )
        return path

    def _start_gateways(self) -> None:
        b_config = self._gateway_toml(
            "b", B_MX, ["b.example"], '\n[dmarc]\ntrusted_sealers = ["lists.c.example"]\n'
        )
        self._spawn("b", "mx", [self.mailwarden, "serve", "--json", "--config", str(b_config)])
        list_config = self._gateway_toml("list", LIST_MX, ["lists.c.example"], "")
        self._spawn(
            "list", "mx", [self.mailwarden, "serve", "--json", "--config", str(list_config)]
        )
        manager = self.path("list", "listhost.json")
        manager.write_text(
            json.dumps(
                {
                    "listen": f"127.0.0.1:{INTERNAL_PORT}",
                    "address": "lab@lists.c.example",
                    "members": ["bob@b.example"],
                    "tag": "[lab]",
                    "footer": "lab mailing list: lab@lists.c.example\n"
                    "leave: lab-leave@lists.c.example",
                    "bounces": "lab-bounces@lists.c.example",
                    "hostname": LIST_MX,
                    "authserv_id": LIST_MX,
                    "arc_domain": "lists.c.example",
                    "arc_selector": "arc",
                    "arc_key_file": str(self.path("list", "arc.lists.c.example.pem")),
                    "dns_server": NAMESERVER,
                    "log_file": str(self.path("list", "distribution.jsonl")),
                },
                indent=2,
            )
        )
        self._spawn(
            "list",
            "listhost",
            [sys.executable, "-m", "lab.listhost", str(manager)],
            cwd=PROJECT,
        )
        self._start_forwarder()

    def _start_forwarder(self) -> None:
        """fwd.d.example's MX: mailwarden's forwarding rewrites the sender of what it forwards
        (SRS), seals it (ARC, with its own key) and hands it to the forwarder's Postfix; a
        bounce to an SRS address comes back here and goes back to the original sender."""
        aliases = self.path("fwd", "aliases")
        aliases.write_text(
            "# the forwarder's aliases (written by the mailwarden lab)\n"
            + "".join(f"{source}: {target}\n" for source, target in FORWARDS.items())
        )
        key = self.path("fwd", "arc.fwd.d.example.pem")
        config = self._gateway_toml(
            "fwd",
            FWD_MX,
            ["fwd.d.example"],
            f"""
[forwarding]
aliases = "{aliases}"
srs_domain = "{SRS_DOMAIN}"
arc_seal = true
arc_domain = "fwd.d.example"

[[signing.keys]]
domain = "fwd.d.example"
selector = "arc"
key_file = "{key}"
""",
        )
        self._spawn("fwd", "mx", [self.mailwarden, "serve", "--json", "--config", str(config)])

    def _wait_ready(self) -> None:
        """Every long-running program that says so listens (it printed its announcement)."""
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = [s for s in self.services if s.announces]
        while waiting:
            for service in self.services:
                if service.process.poll() is not None:
                    raise LabError(f"{service.name} on {service.host} stopped: {service.failure()}")
            waiting = [s for s in waiting if '"listen"' not in s.stdout.read_text(errors="replace")]
            if time.monotonic() > deadline:
                names = ", ".join(f"{s.name} on {s.host}" for s in waiting)
                raise LabError(f"not listening after {READY_TIMEOUT:.0f} s: {names}")
            pause(0.1)

    # -- running scenarios -----------------------------------------------------------------

    def maildir(self, host: str, user: str) -> Path:
        return self.path(host, "postfix", "mail", user, "new")

    def _mail(self, host: str, user: str) -> dict[str, bytes]:
        folder = self.maildir(host, user)
        if not folder.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir(), key=os.path.getmtime)}

    def _logs(self) -> dict[str, Path]:
        logs = {
            "a": self.path("a", "transactions.jsonl"),
            "b": self.path("b", "transactions.jsonl"),
            "list": self.path("list", "transactions.jsonl"),
            "listhost": self.path("list", "distribution.jsonl"),
        }
        logs["fwd"] = self.path("fwd", "transactions.jsonl")
        return logs

    def _postfix_logs(self) -> dict[str, Path]:
        hosts = ["a", "b", "fwd"]
        return {host: self.path(host, "postfix", "maillog") for host in hosts}

    @staticmethod
    def _size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    @staticmethod
    def _since(path: Path, offset: int) -> str:
        if not path.exists():
            return ""
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")

    def _wait_caches_expired(self) -> None:
        """mailwarden's resolvers keep answers 5 s: wait so this scenario's lookups all
        reach the DNS server (and its log)."""
        assert self.collector is not None
        events = self.collector.snapshot()
        last = max([e.time for e in events] + [self._last_scenario_end])
        while time.time() < last + CACHE_SECONDS:
            pause(0.1)

    def send(self, scenario: Scenario) -> Observation:
        """Run one scenario and gather what every host recorded meanwhile."""
        assert self.collector is not None
        pause(0)
        self._wait_caches_expired()
        logs, postfix_logs = self._logs(), self._postfix_logs()
        log_marks = {name: self._size(path) for name, path in logs.items()}
        postfix_marks = {name: self._size(path) for name, path in postfix_logs.items()}
        bob_before, alice_before = set(self._mail("b", "bob")), set(self._mail("a", "alice"))
        started = time.time()
        result = self.net.run(scenario.client, [program("swaks"), *scenario.swaks], timeout=120)
        transcript = result.stdout.decode("utf-8", "replace")
        if result.returncode == 0:
            self._wait_outcome(bob_before, alice_before, postfix_logs, postfix_marks)
        self._dns_marker(scenario.key)
        pause(0.2)  # Postfix's log daemon writes a moment after the fact
        ended = time.time()
        self._last_scenario_end = ended
        records: dict[str, list[LogRecord]] = {}
        for name, path in logs.items():
            records[name] = [
                LogRecord.parse(record)
                for line in self._since(path, log_marks[name]).splitlines()
                if isinstance(record := _json(line), dict)
            ]
        bob = self._mail("b", "bob")
        alice = self._mail("a", "alice")
        return Observation(
            scenario=scenario,
            started=started,
            ended=ended,
            transcript=transcript,
            status=result.returncode,
            dns=[
                e
                for e in exchanges(self.collector.snapshot())
                if started - 0.05 <= e.time <= ended and e.client != NAMESERVER
            ],
            logs=records,
            postfix={
                name: self._since(path, postfix_marks[name]) for name, path in postfix_logs.items()
            },
            bob=[data for name, data in bob.items() if name not in bob_before],
            alice=[data for name, data in alice.items() if name not in alice_before],
        )

    def _dns_marker(self, label: str) -> None:
        """Ask the DNS server a last question from its own host and wait until its answer is
        in the dnstap log: every query of the scenario is then in it too."""
        assert self.collector is not None
        self._markers += 1
        name = f"end-of-{label}-{self._markers}.example"
        self.net.run("dns", [sys.executable, "-I", "-S", "-c", MARKER_QUERY, NAMESERVER, name])
        if not self.collector.wait_for(name):
            raise LabError(f"the DNS server's log did not show the marker query {name}")

    def _wait_outcome(
        self,
        bob_before: set[str],
        alice_before: set[str],
        postfix_logs: dict[str, Path],
        postfix_marks: dict[str, int],
    ) -> None:
        """The MSA took the message: wait until it reached Bob or a bounce reached Alice, or
        a Postfix deferred it (it would only retry later)."""
        deadline = time.monotonic() + OUTCOME_TIMEOUT
        while time.monotonic() < deadline:
            if set(self._mail("b", "bob")) - bob_before:
                return
            if set(self._mail("a", "alice")) - alice_before:
                return
            for name, path in postfix_logs.items():
                if "status=deferred" in self._since(path, postfix_marks[name]):
                    return
            pause(0.1)


def _events(output: bytes) -> list[dict[str, Any]]:
    """The events `mailwarden dkim rotate --json` printed."""
    found = _json(output.decode("utf-8", "replace"))
    events = found.get("events") if isinstance(found, dict) else None
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


def _published(output: bytes) -> list[DKIMKey]:
    """The records `dkim rotate --domain` says to publish."""
    return [
        DKIMKey(str(e["domain"]), str(e["selector"]), str(e["publish"]))
        for e in _events(output)
        if e.get("event") == "created" and e.get("publish")
    ]


def _activated(output: bytes) -> list[str]:
    """The selectors `dkim rotate --advance` started signing with."""
    return [str(e.get("selector")) for e in _events(output) if e.get("event") == "activated"]


def _json(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None


_signalled: list[int] = []  # the signals received while `signals_raise` was in force


def pause(seconds: float) -> None:
    """Sleep, but end the run if a signal came: a KeyboardInterrupt raised by the handler can
    be lost (Python ignores exceptions raised at some points, a fork's handlers among them),
    so every wait of the lab looks here too."""
    if _signalled:
        raise KeyboardInterrupt(f"signal {_signalled[0]}")
    time.sleep(seconds)
    if _signalled:
        raise KeyboardInterrupt(f"signal {_signalled[0]}")


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end the run (KeyboardInterrupt), so the teardown always
    runs; the signal is also remembered for `pause`, should the exception be lost."""

    def interrupt(signum: int, frame: object) -> None:
        _signalled.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _signalled.clear()
