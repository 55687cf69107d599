"""A private Postfix instance as the gateway's downstream: loopback port, Maildir delivery.

`postfix -c DIR start` with its own main.cf/master.cf: queue and data under a temporary
directory, smtpd on a free loopback port, the virtual delivery agent writing one Maildir per
known recipient of example.net (unknown users are refused at RCPT with 550 5.1.1).
"""

from __future__ import annotations

import socket
import subprocess
import time
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


@dataclass
class Postfix:
    root: Path
    port: int
    postfix: str

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

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [self.postfix, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            maillog = self.root / "maillog"
            log = maillog.read_text(errors="replace")[-3000:] if maillog.exists() else ""
            raise RuntimeError(f"postfix {args}: {result.stderr or result.stdout}\n{log}")

    def start(self) -> None:
        self._run("start")
        deadline = time.monotonic() + 20
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("postfix did not open its port")
            time.sleep(0.05)

    def stop(self) -> None:
        if not self.running():
            return
        self._run("stop")
        deadline = time.monotonic() + 20
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

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
    (etc / "main.cf").write_text(main_cf + extra)
    (etc / "master.cf").write_text(MASTER_CF.format(port=port))
    subprocess.run(["chown", "-R", f"{VMAIL_UID}:{VMAIL_UID}", str(base)], check=True)
    subprocess.run(["chown", "postfix", str(data)], check=True)
    server = Postfix(root, port, postfix)
    server.start()
    return server
