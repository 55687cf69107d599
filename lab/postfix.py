"""A private Postfix instance for one lab host: its own config, queue and Maildirs.

`write_postfix(root, ...)` writes main.cf and master.cf under root/etc (queue under
root/queue, mail under root/mail/<user>/ as Maildirs, the log in root/maillog); the lab starts
it with `postfix -c root/etc start` inside the host's namespace. Its SMTP client looks mail
exchangers up in DNS (`smtp_host_lookup = dns`) through the namespace's resolv.conf, and logs
the SMTP dialogue with every lab peer (`debug_peer_list`), which the lab reads back.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VMAIL_UID", "ChatLine", "Delivery", "chat_lines", "deliveries", "write_postfix"]

VMAIL_UID = 65534  # nobody: the virtual agent refuses uids below virtual_minimum_uid

_SERVICES = """\
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
tlsmgr    unix  - - n 1000? 1 tlsmgr
postlog   unix-dgram n - n - 1 postlogd
"""


def write_postfix(
    root: Path,
    *,
    hostname: str,
    listeners: Iterable[tuple[str, int]],
    mailboxes: Mapping[str, Iterable[str]],
    interfaces: Iterable[str],
    mynetworks: str = "127.0.0.0/8",
    extra: str = "",
) -> Path:
    """Write the instance's configuration; returns its config directory.

    `listeners`: the smtpd services (address, port). `mailboxes`: domain -> local parts
    delivered into Maildirs here (other recipients of those domains are refused at RCPT).
    `interfaces`: the addresses Postfix counts as its own (inet_interfaces; a mail exchanger
    at another address of this host, such as mailwarden's gateway, is then not a loop)."""
    etc, queue, data, base = root / "etc", root / "queue", root / "data", root / "mail"
    for folder in (etc, queue, data, base):
        folder.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    maps = ", ".join(
        f"{user}@{domain}={user}/" for domain, users in mailboxes.items() for user in users
    )
    domains = ", ".join(mailboxes)
    main_cf = f"""\
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = {hostname}
mydomain = {hostname.partition(".")[2]}
myorigin = $myhostname
mydestination =
inet_interfaces = {", ".join(interfaces)}
inet_protocols = ipv4
mynetworks = {mynetworks}
smtpd_banner = $myhostname ESMTP Postfix
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {base}
virtual_mailbox_maps = {f"inline:{{ {maps} }}" if maps else ""}
virtual_uid_maps = static:{VMAIL_UID}
virtual_gid_maps = static:{VMAIL_UID}
virtual_minimum_uid = 100
virtual_mailbox_limit = 0
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient
smtpd_peername_lookup = no
smtp_host_lookup = dns
smtp_tls_security_level = may
smtp_tls_loglevel = 1
# the SMTP dialogue with every lab host, in the log the lab reads back
debug_peer_list = 10.99.0.0/16
debug_peer_level = 1
alias_maps =
alias_database =
biff = no
smtputf8_enable = yes
delay_warning_time = 0
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
{extra}"""
    (etc / "main.cf").write_text(main_cf)
    smtpd = "".join(f"{host}:{port} inet n - n - - smtpd\n" for host, port in listeners)
    (etc / "master.cf").write_text(smtpd + _SERVICES)
    subprocess.run(["chown", "-R", f"{VMAIL_UID}:{VMAIL_UID}", str(base)], check=True)
    subprocess.run(["chown", "postfix", str(data)], check=True)
    return etc


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One line of Postfix's SMTP client dialogue: `sent` (>) or received (<)."""

    peer: str  # "mx.b.example[10.99.2.25]:25"
    sent: bool
    text: str


# smtp_chat with debug_peer_level 1: "postfix/smtp[123]: > peer[addr]:25: EHLO name"
_CHAT = re.compile(r"postfix[^:]*/smtp\[\d+\]: ([<>]) (\S+\[[0-9.]+\]:\d+): (.*)$")


def chat_lines(log: str) -> list[ChatLine]:
    """The SMTP client dialogue lines in a Postfix log, in order."""
    lines = []
    for line in log.splitlines():
        match = _CHAT.search(line)
        if match:
            lines.append(ChatLine(match[2], match[1] == ">", match[3]))
    return lines


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery attempt's outcome in Postfix's log (`status=sent|deferred|bounced`)."""

    queue_id: str
    to: str
    relay: str
    status: str
    detail: str


_STATUS = re.compile(
    r": ([0-9A-F]+): to=<([^>]*)>,(?: orig_to=<[^>]*>,)? relay=([^,]+),.*? status=(\w+) \((.*)\)$"
)


def deliveries(log: str) -> list[Delivery]:
    """Every `status=` line of a Postfix log, in order."""
    found = []
    for line in log.splitlines():
        match = _STATUS.search(line)
        if match:
            found.append(Delivery(match[1], match[2], match[3], match[4], match[5]))
    return found
