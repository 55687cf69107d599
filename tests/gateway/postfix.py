"""A private Postfix instance as the gateway's downstream: loopback port, Maildir delivery.

`postfix -c DIR start` with its own main.cf/master.cf: queue and data under a temporary
directory, smtpd on a free loopback port, the virtual delivery agent writing one Maildir per
known recipient of example.net (unknown users are refused at RCPT with 550 5.1.1).

Logging goes to `{root}/maillog` through the postlogd service (`maillog_file`). postlogd has
one weakness the helper must avoid: until it has read main.cf it logs about itself through its
own socket, with a blocking send (postlogd.c: "During process initialization, the postlogd
daemon will log events to the postlog socket"; msg_logger.c connects BLOCKING). A main.cf that
makes Postfix warn at start-up (a setting given twice: "overriding earlier entry"; a restarted
postlogd was traced reading main.cf four times, sending itself 7 warnings for one repeated
name) lets a postlogd that starts while its socket is full (net.unix.max_dgram_qlen = 10: 11
datagrams) block on itself for good, and every process that logs blocks behind it: smtpd
before its greeting, the master, even `postfix stop`. So `extra` settings replace the base
ones instead of repeating them (`merge_main_cf`); `stop` fails if postlogd ever logged about
itself, and kills an instance that does not stop, saying so.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.gateway.helpers import messages, require_program

USERS = ("bob", "carol", "postmaster")
DOMAIN = "example.net"
VMAIL_UID = 65534  # nobody: the virtual agent refuses uids below virtual_minimum_uid

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def main_cf_entries(text: str) -> Iterator[tuple[str, str]]:
    """(name, text) for each setting of a main.cf text, continuation lines included. Blank
    lines and lines whose first non-blank character is `#` are dropped (postconf(5))."""
    lines: list[str]
    name, lines = "", []
    for line in text.splitlines(keepends=True):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t":
            if not name:
                raise ValueError(f"main.cf continuation line without a setting: {line!r}")
            lines.append(line if line.endswith("\n") else line + "\n")
            continue
        if name:
            yield name, "".join(lines)
        key, equals, _ = line.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"main.cf line is not `name = value`: {line!r}")
        name, lines = key.strip(), [line if line.endswith("\n") else line + "\n"]
    if name:
        yield name, "".join(lines)


def merge_main_cf(base: str, extra: str) -> str:
    """`base` with each setting of `extra` replacing the one of the same name in place (new
    ones appended): every name once, so no Postfix process warns "overriding earlier entry",
    postlogd least of all (see the module docstring)."""
    settings: dict[str, str] = {}
    for text in (base, extra):
        settings.update(main_cf_entries(text))
    return "".join(settings.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` every 50 ms for up to `timeout` seconds; its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def live_pids() -> list[int]:
    """Processes that exist and are not zombies (a zombie has exited: nothing to stop)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if stat.rpartition(")")[2].split()[0] != "Z":
                pids.append(int(entry.name))
    return pids


def environment(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def describe(pid: int) -> str:
    """`name[pid] wchan` (the kernel function it sleeps in: unix_wait_for_peer is a send to a
    full datagram socket), for saying how an instance was wedged."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return f"[{pid}] gone"
    return f"{name}[{pid}] {wchan}"


@dataclass
class Postfix:
    root: Path
    port: int
    postfix: str
    stop_timeout: float = 15.0

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def mail_base(self) -> Path:
        return self.root / "mail"

    def maildir(self, user: str) -> Path:
        return self.mail_base / user

    def delivered(self, user: str) -> list[bytes]:
        return messages(self.maildir(user))

    def wait_delivered(self, user: str, count: int = 1, timeout: float = 15.0) -> list[bytes]:
        """Postfix delivers after it answered: poll the Maildir."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.delivered(user)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.delivered(user)

    def queue_empty(self) -> bool:
        queue = self.root / "queue"
        return not any(
            path.is_file()
            for sub in ("incoming", "active", "deferred", "maildrop")
            for path in (queue / sub).rglob("*")
        )

    def clear(self) -> None:
        for user in USERS:
            for sub in ("new", "cur", "tmp"):
                folder = self.maildir(user) / sub
                if folder.is_dir():
                    for path in folder.iterdir():
                        path.unlink(missing_ok=True)  # a delivery may move it meanwhile

    @property
    def maillog(self) -> Path:
        return self.root / "maillog"

    def log_tail(self, size: int = 3000) -> str:
        return self.maillog.read_text(errors="replace")[-size:] if self.maillog.exists() else ""

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        result = subprocess.run(
            [self.postfix, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            detail = result.stderr or result.stdout
            raise RuntimeError(f"postfix {args}: {detail}\n{self.log_tail()}")

    def start(self) -> None:
        """`postfix start`, then wait for smtpd's port. An instance that does not come up is
        stopped (killed if need be) before the error, so it leaves nothing running."""
        try:
            self._run("start")
            if wait_until(lambda: port_open(self.port), 20.0):
                return
            problem = "postfix did not open its port"
        except subprocess.TimeoutExpired:
            problem = "`postfix start` did not finish"
        try:
            self.stop()
        except RuntimeError as error:
            problem += f"; {error}"
        raise RuntimeError(problem)

    def stop(self) -> None:
        """`postfix stop`, then wait until no process of this instance is left. If Postfix does
        not stop in `stop_timeout` seconds (a wedged instance: `postfix stop` itself blocks on
        a blocked postlogd) its processes are killed and RuntimeError says what was found."""
        problem = ""
        if self.master_running():
            try:
                self._run("stop", timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                problem = f"`postfix stop` did not finish in {self.stop_timeout:g}s"
            except RuntimeError as error:
                problem = str(error)
        if not problem and not wait_until(self.stopped, self.stop_timeout):
            problem = f"processes left {self.stop_timeout:g}s after `postfix stop`"
        if not problem:
            self.check_postlogd_quiet()
            return
        found = [describe(pid) for pid in self.processes()]
        killed = self.kill()
        left = [describe(pid) for pid in self.processes()]
        raise RuntimeError(
            f"postfix in {self.root} did not stop: {problem}; its processes were {found}, "
            f"{killed} killed, left: {left}\n{self.log_tail()}"
        )

    def check_postlogd_quiet(self) -> None:
        """Raise if postlogd logged about itself: until it has read main.cf that goes through
        its own socket and can block it for good (module docstring), so a configuration that
        makes it talk is an error now rather than a rare hang later."""
        log = self.maillog.read_text(errors="replace") if self.maillog.exists() else ""
        talk = [line for line in log.splitlines() if "/postlogd[" in line]
        if talk:
            raise RuntimeError(
                f"postlogd logged about itself (it can deadlock on its own socket): {talk[:3]}"
            )

    def stopped(self) -> bool:
        return not self.processes() and not port_open(self.port)

    def master_pid(self) -> int | None:
        """The pid in master.pid if that process is this instance's master."""
        try:
            pid = int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid in self.processes() else None

    def master_running(self) -> bool:
        return self.master_pid() is not None

    def processes(self) -> list[int]:
        """Live processes of this instance: Postfix exports MAIL_CONFIG (import_environment)
        to its master and everything the master starts, postfix-script included."""
        wanted = b"MAIL_CONFIG=" + os.fsencode(self.config_dir)
        return [pid for pid in live_pids() if wanted in environment(pid)]

    def kill(self) -> int:
        """SIGKILL every process of this instance until none is left (the master may fork
        meanwhile); how many were killed."""
        killed: set[int] = set()
        deadline = time.monotonic() + 10
        while (pids := self.processes()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            wait_until(lambda: not set(pids) & set(live_pids()), 2.0)
        return len(killed)

    def running(self) -> bool:
        return (self.root / "queue" / "pid" / "master.pid").exists() and port_open(self.port)

    def ensure_running(self) -> None:
        if not self.running():
            self.start()


def start_postfix(root: Path, extra: str = "") -> Postfix:
    """Write a private configuration under `root` and start Postfix. `extra` is appended to
    main.cf (a later setting overrides an earlier one)."""
    postfix = require_program("postfix")
    port = free_port()
    etc, queue, data, base = root / "etc", root / "queue", root / "data", root / "mail"
    for folder in (etc, queue, data, base):
        folder.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    mailboxes = ", ".join(f"{user}@{DOMAIN}={user}/" for user in USERS)
    main_cf = f"""\
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = downstream.test.example
mydomain = test.example
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP downstream
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {base}
virtual_mailbox_maps = inline:{{ {mailboxes} }}
virtual_uid_maps = static:{VMAIL_UID}
virtual_gid_maps = static:{VMAIL_UID}
virtual_minimum_uid = 100
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient
message_size_limit = 52428800
virtual_mailbox_limit = 0
smtputf8_enable = yes
alias_maps =
alias_database =
biff = no
"""
    (etc / "main.cf").write_text(merge_main_cf(main_cf, extra))
    (etc / "master.cf").write_text(MASTER_CF.format(port=port))
    subprocess.run(["chown", "-R", f"{VMAIL_UID}:{VMAIL_UID}", str(base)], check=True)
    subprocess.run(["chown", "postfix", str(data)], check=True)
    server = Postfix(root, port, postfix)
    server.start()
    return server
