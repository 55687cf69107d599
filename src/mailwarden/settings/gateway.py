"""The `[gateway]` section: the SMTP server, its limits, timeouts and TLS (RFC 5321)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mailwarden.dns import normalize
from mailwarden.schema import InvalidSetting, setting

__all__ = [
    "BareLineEnding",
    "DownstreamProtocol",
    "GatewaySettings",
    "Network",
    "SMTPLimits",
    "StrictAction",
    "TLSSettings",
    "Timeouts",
    "default_hostname",
    "parse_hostport",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DownstreamProtocol(StrEnum):
    """How the gateway talks to the downstream mailbox server."""

    SMTP = "smtp"
    LMTP = "lmtp"  # RFC 2033: one reply per recipient after DATA


class BareLineEnding(StrEnum):
    """What to do with bare LF / bare CR in a message (SMTP smuggling), or with a command line
    ended by a bare LF."""

    REJECT = "reject"  # 554 5.5.2 for the whole message; 500 5.5.2 for the command
    NORMALIZE = "normalize"  # turn them into CRLF line ends (still never an end of data)


class StrictAction(StrEnum):
    """What to do when a client breaks a strict-SMTP rule (postscreen's actions)."""

    DROP = "drop"  # 554 5.5.1 (pregreet) or 554 5.5.1 and disconnect
    ENFORCE = "enforce"  # go on, but refuse every RCPT and DATA with 550 5.5.1
    LOG = "log"  # only record the event for the policy to score


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """`host:port`, `[v6]:port` (or a bare host with a default port). Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string HOST:PORT, got {text!r}")
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"unclosed [ in {text!r}")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"junk after ] in {text!r}")
    else:
        host, sep, port_text_ = text.rpartition(":")
        if not sep or ":" in host:
            host, port_text = text, None
        else:
            port_text = port_text_
    if not host:
        raise ValueError(f"missing host in {text!r}")
    if "\x00" in host or any(c.isspace() for c in host):
        raise ValueError(f"invalid host in {text!r}")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"missing :PORT in {text!r}")
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port {port_text!r}")
    return host, int(port_text)


def _relay_to(text: object) -> tuple[str, int] | None:
    if text == "":
        return None
    return parse_hostport(text, 25)  # type: ignore[arg-type]


def _network(text: object) -> Network:
    if not isinstance(text, str):
        raise ValueError(f"expected a network (CIDR) string, got {text!r}")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"not a network: {text!r}") from None


def _domain(text: object) -> str:
    if not isinstance(text, str) or not text.strip(". "):
        raise ValueError(f"expected a domain name, got {text!r}")
    return normalize(text.strip())


def _header_name(text: object) -> str:
    """A header field name (RFC 5322 §3.6.8), or a prefix of names ending in `*`."""
    if not isinstance(text, str):
        raise ValueError(f"expected a header field name, got {text!r}")
    name = text[:-1] if text.endswith("*") else text
    if not name or not all(33 <= ord(c) <= 126 and c not in ":*" for c in name):
        raise ValueError(f"not a header field name (or a prefix ending in *): {text!r}")
    return text


def default_hostname() -> str:
    """This host's fully qualified name, else its host name; "localhost" only when nothing
    better is known (the serve command warns then: a greeting as localhost looks forged)."""
    for name in (socket.getfqdn(), socket.gethostname()):
        name = name.strip().rstrip(".").lower()
        if name and name != "localhost" and not name.startswith("localhost."):
            return name
    return "localhost"


@dataclass(frozen=True, slots=True)
class SMTPLimits:
    max_message_size: int = setting(26_214_400, min=1)  # octets, announced with SIZE
    max_recipients: int = setting(100, min=1)  # per message (RFC 5321 §4.5.3.1.8 minimum)
    max_line_length: int = setting(1000, min=1)  # octets with CRLF (RFC 5321 §4.5.3.1.6)
    max_command_length: int = setting(2048, min=1)  # octets with CRLF (ESMTP parameters)
    max_header_size: int = setting(102_400, min=1)  # octets of the message's header section
    max_connections: int = setting(1000, min=1)  # open client connections in total
    max_connections_per_client: int = setting(20, min=1)  # open connections from one address
    max_errors: int = setting(10, min=1)  # error replies before the gateway hangs up (421)
    max_unknown_commands: int = setting(5, min=1)  # unknown commands before it hangs up
    # NOOP, RSET, VRFY, EXPN, HELP, repeated HELO/EHLO and empty BDAT chunks in one session
    # (counted from zero again after each delivered message); the next gets 421 4.7.0.
    # Postfix's smtpd_junk_command_limit.
    max_junk_commands: int = setting(100, min=1)
    # Octets a second a client must average in DATA and in each BDAT chunk: every octet moves
    # the deadline 1/min_data_rate s later, at most timeouts.data_block s ahead; a slower
    # client gets 421 4.4.2. Postfix's smtpd_min_data_rate.
    min_data_rate: int = setting(500, min=1)
    # A message body larger than this stays in a spool file under data_dir/spool, never
    # whole in memory (hashing and relaying stream it).
    spool_threshold: int = setting(262_144, min=0)
    # Message octets all connections together may hold in memory; past it, bodies spool.
    memory_budget: int = setting(33_554_432, min=0)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. RFC 5321 §4.5.3.2: the server waits 5 minutes for a command (§4.5.3.2.7)
    and 3 minutes for each block of data (§4.5.3.2.5)."""

    command: float = setting(300.0, above=0)
    data_block: float = setting(180.0, above=0)
    tls_handshake: float = setting(60.0, above=0)
    downstream_connect: float = setting(30.0, above=0)
    downstream_command: float = setting(120.0, above=0)  # each downstream reply
    downstream_data: float = setting(300.0, above=0)  # the downstream's reply to end of data
    checks: float = setting(60.0, above=0)  # a safety net above [deadlines] data: then 451
    session: float = setting(1800.0, above=0)  # a whole connection, however busy; then 421


@dataclass(frozen=True, slots=True)
class TLSSettings:
    cert_file: str = setting("", path=True)  # PEM chain; empty: self-signed (if enabled) or none
    key_file: str = setting("", path=True)
    self_signed: bool = True  # without cert_file: generate a pair under data_dir/tls
    enabled: bool = True  # offer STARTTLS

    def validate(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise InvalidSetting("", "cert_file and key_file go together")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """The receiving gateway (`mailwarden serve`)."""

    listen: tuple[str, int] = setting(("127.0.0.1", 2525), convert=parse_hostport)
    hostname: str = setting(default_factory=default_hostname)  # greeting, Received, authserv-id
    local_domains: tuple[str, ...] = setting((), each=_domain)
    recipient_map: str = setting("", path=True)  # one accepted address or @domain a line
    trusted_networks: tuple[Network, ...] = setting((), each=_network)
    relay_to: tuple[str, int] | None = setting(None, convert=_relay_to)  # None: the sink
    protocol: DownstreamProtocol = DownstreamProtocol.SMTP
    greet_pause: float = setting(1.0, min=0, max=300)  # RFC 5321 §4.5.3.2.1: 5 minutes
    pregreet_action: StrictAction = StrictAction.DROP
    pipelining_action: StrictAction = StrictAction.DROP
    non_smtp_action: StrictAction = StrictAction.DROP
    bare_lf: BareLineEnding = BareLineEnding.REJECT
    command_bare_lf: BareLineEnding = BareLineEnding.REJECT  # a command line ending in bare LF
    data_dir: str = setting("data", path=True)
    log_file: str = setting("-", path=True)  # "-" is standard output, "" turns the log off
    quarantine_address: str = ""  # quarantined mail goes here when the checks redirect it
    our_names: tuple[str, ...] = setting((), each=_domain)  # other authserv-ids of this site
    remove_headers: tuple[str, ...] = setting((), each=_header_name)  # dropped from incoming
    limits: SMTPLimits = setting(default_factory=SMTPLimits)
    timeouts: Timeouts = setting(default_factory=Timeouts)
    tls: TLSSettings = setting(default_factory=TLSSettings)

    def validate(self) -> None:
        name = self.hostname.strip()
        if not name or any(c.isspace() or c in '()<>[]\\"' for c in name) or "\x00" in name:
            raise InvalidSetting("hostname", f"not a host name: {self.hostname!r}")
        if self.quarantine_address and "@" not in self.quarantine_address:
            raise InvalidSetting("quarantine_address", "not an address")
        if not self.data_dir:
            raise InvalidSetting("data_dir", "must not be empty")

    def sink_maildir(self) -> Path:
        """Where the built-in sink delivers when no relay_to is configured."""
        return Path(self.data_dir) / "sink" / "Maildir"

    def is_trusted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted_networks)
