"""The gateway's configuration: the `[gateway]` table of a TOML file, embedded defaults.

Every setting has a default, so no file is needed. Mistakes are reported as `ConfigError`
naming the file, the key and the reason. The other tables (`[dns]`, `[policy]`,
`[greylist]`, `[dnsbl]`) belong to the checks: they are kept untouched in `GatewayConfig.raw`.
"""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from mailwarden.policy.config import ConfigError  # one error type for every table

__all__ = [
    "BareLineEnding",
    "ConfigError",
    "DownstreamProtocol",
    "GatewayConfig",
    "Network",
    "SMTPLimits",
    "StrictAction",
    "TLSConfig",
    "Timeouts",
    "config_from_mapping",
    "load_config",
    "parse_hostport",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DownstreamProtocol(StrEnum):
    """How the gateway talks to the downstream mailbox server."""

    SMTP = "smtp"
    LMTP = "lmtp"  # RFC 2033: one reply per recipient after DATA


class BareLineEnding(StrEnum):
    """What to do with bare LF / bare CR in a message (SMTP smuggling)."""

    REJECT = "reject"  # 554 5.5.2 for the whole message
    NORMALIZE = "normalize"  # turn them into CRLF line ends (still never an end of data)


class StrictAction(StrEnum):
    """What to do when a client breaks a strict-SMTP rule (postscreen's actions)."""

    DROP = "drop"  # 554 5.5.1 (pregreet) or 554 5.5.1 and disconnect
    ENFORCE = "enforce"  # go on, but refuse every RCPT and DATA with 550 5.5.1
    LOG = "log"  # only record the event for the policy to score


@dataclass(frozen=True, slots=True)
class SMTPLimits:
    max_message_size: int = 26_214_400  # octets, announced with SIZE (RFC 1870)
    max_recipients: int = 100  # per message (RFC 5321 §4.5.3.1.8 minimum)
    max_line_length: int = 1000  # octets of a message line with CRLF (RFC 5321 §4.5.3.1.6)
    max_command_length: int = 2048  # octets of a command line with CRLF (ESMTP parameters)
    max_header_size: int = 102_400  # octets of the message's header section
    max_connections: int = 1000  # open client connections in total
    max_connections_per_client: int = 20  # open connections from one client address
    max_errors: int = 10  # error replies before the gateway hangs up (421 4.7.0)
    max_unknown_commands: int = 5  # unknown commands before the gateway hangs up


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. RFC 5321 §4.5.3.2: the server waits 5 minutes for a command (§4.5.3.2.7)
    and 3 minutes for each block of data (§4.5.3.2.5)."""

    command: float = 300.0
    data_block: float = 180.0
    tls_handshake: float = 60.0
    downstream_connect: float = 30.0
    downstream_command: float = 120.0  # each downstream reply; slower answers the client 451
    downstream_data: float = 300.0  # the downstream's reply to the end of data
    checks: float = 240.0  # on_data; a slower check answers the client 451


@dataclass(frozen=True, slots=True)
class TLSConfig:
    cert_file: str = ""  # PEM certificate chain; empty: self-signed (if enabled) or no TLS
    key_file: str = ""
    self_signed: bool = True  # without cert_file: generate a pair under data_dir/tls
    enabled: bool = True  # offer STARTTLS


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    listen: tuple[str, int] = ("127.0.0.1", 2525)
    hostname: str = field(default_factory=socket.getfqdn)
    local_domains: tuple[str, ...] = ()
    recipient_map: str = ""  # file: one accepted address or @domain a line
    trusted_networks: tuple[Network, ...] = ()
    relay_to: tuple[str, int] | None = None  # None: the built-in Maildir sink
    protocol: DownstreamProtocol = DownstreamProtocol.SMTP
    greet_pause: float = 1.0
    pregreet_action: StrictAction = StrictAction.DROP
    pipelining_action: StrictAction = StrictAction.DROP
    non_smtp_action: StrictAction = StrictAction.DROP
    bare_lf: BareLineEnding = BareLineEnding.REJECT
    data_dir: str = "data"
    log_file: str = "-"  # "-" is standard output, "" turns the log off
    quarantine_address: str = ""  # quarantined mail goes here when the checks redirect it
    limits: SMTPLimits = field(default_factory=SMTPLimits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    tls: TLSConfig = field(default_factory=TLSConfig)
    raw: Mapping[str, Any] = field(default_factory=dict)  # the whole file, for the checks
    source: str = "<defaults>"

    def with_overrides(self, **changes: Any) -> GatewayConfig:
        return replace(self, **changes)

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


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """`host:port`, `[v6]:port` (or a bare host with a default port). Raises ValueError."""
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
    if port_text is None:
        if default_port is None:
            raise ValueError(f"missing :PORT in {text!r}")
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port {port_text!r}")
    return host, int(port_text)


def load_config(path: str | Path | None) -> GatewayConfig:
    """The configuration of `path` (TOML), or the embedded defaults when None."""
    if path is None:
        return config_from_mapping({}, "<defaults>")
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(source, "-", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from None
    config = config_from_mapping(data, source)
    base = Path(path).resolve().parent
    return _resolve_paths(config, base)


def _resolve_paths(config: GatewayConfig, base: Path) -> GatewayConfig:
    """Relative paths in a file are relative to the file's directory."""

    def rel(value: str) -> str:
        return (
            str(base / value) if value and value != "-" and not Path(value).is_absolute() else value
        )

    tls = replace(
        config.tls, cert_file=rel(config.tls.cert_file), key_file=rel(config.tls.key_file)
    )
    return replace(
        config,
        data_dir=rel(config.data_dir),
        log_file=rel(config.log_file),
        recipient_map=rel(config.recipient_map),
        tls=tls,
    )


def config_from_mapping(data: Mapping[str, Any], source: str = "<config>") -> GatewayConfig:
    """Build the configuration from parsed TOML; unknown keys are errors (typos must show)."""
    table = data.get("gateway", {})
    if not isinstance(table, Mapping):
        raise ConfigError(source, "gateway", "must be a table")
    reader = _Reader(table, source, "gateway")
    defaults = GatewayConfig(hostname="localhost")
    known = {f.name for f in fields(GatewayConfig)} - {"raw", "source"}
    for key in table:
        if key not in known:
            raise ConfigError(source, f"gateway.{key}", "unknown setting")
    listen = reader.get("listen", str, None)
    relay_to = reader.get("relay_to", str, "")
    hostname = reader.get("hostname", str, "") or socket.getfqdn()
    local_domains = tuple(d.lower().rstrip(".") for d in reader.get_list("local_domains"))
    networks: list[Network] = []
    for item in reader.get_list("trusted_networks"):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                source, "gateway.trusted_networks", f"not a network: {item!r}"
            ) from None
    try:
        listen_addr = parse_hostport(listen) if listen else defaults.listen
    except ValueError as exc:
        raise ConfigError(source, "gateway.listen", str(exc)) from None
    try:
        relay_addr = parse_hostport(relay_to, 25) if relay_to else None
    except ValueError as exc:
        raise ConfigError(source, "gateway.relay_to", str(exc)) from None
    config = GatewayConfig(
        listen=listen_addr,
        hostname=hostname,
        local_domains=local_domains,
        recipient_map=reader.get("recipient_map", str, ""),
        trusted_networks=tuple(networks),
        relay_to=relay_addr,
        protocol=reader.get_enum("protocol", DownstreamProtocol, defaults.protocol),
        greet_pause=reader.get_number("greet_pause", defaults.greet_pause, minimum=0),
        pregreet_action=reader.get_enum("pregreet_action", StrictAction, defaults.pregreet_action),
        pipelining_action=reader.get_enum(
            "pipelining_action", StrictAction, defaults.pipelining_action
        ),
        non_smtp_action=reader.get_enum("non_smtp_action", StrictAction, defaults.non_smtp_action),
        bare_lf=reader.get_enum("bare_lf", BareLineEnding, defaults.bare_lf),
        data_dir=reader.get("data_dir", str, defaults.data_dir),
        log_file=reader.get("log_file", str, defaults.log_file),
        quarantine_address=reader.get("quarantine_address", str, ""),
        limits=_sub(table, "limits", SMTPLimits, source),
        timeouts=_sub(table, "timeouts", Timeouts, source),
        tls=_sub(table, "tls", TLSConfig, source),
        raw=dict(data),
        source=source,
    )
    if config.quarantine_address and "@" not in config.quarantine_address:
        raise ConfigError(source, "gateway.quarantine_address", "not an address")
    if bool(config.tls.cert_file) != bool(config.tls.key_file):
        raise ConfigError(source, "gateway.tls", "cert_file and key_file go together")
    return config


def _sub(table: Mapping[str, Any], name: str, cls: Any, source: str) -> Any:
    sub = table.get(name, {})
    if not isinstance(sub, Mapping):
        raise ConfigError(source, f"gateway.{name}", "must be a table")
    defaults = cls()
    values: dict[str, Any] = {}
    known = {f.name: type(getattr(defaults, f.name)) for f in fields(cls)}
    for key, value in sub.items():
        where = f"gateway.{name}.{key}"
        if key not in known:
            raise ConfigError(source, where, "unknown setting")
        expected = known[key]
        if expected is bool:
            if not isinstance(value, bool):
                raise ConfigError(source, where, "must be true or false")
        elif expected is str:
            if not isinstance(value, str):
                raise ConfigError(source, where, "must be a string")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, where, "must be a number")
        elif expected is int and not isinstance(value, int):
            raise ConfigError(source, where, "must be a whole number")
        elif value <= 0:
            raise ConfigError(source, where, "must be positive")
        values[key] = float(value) if expected is float else value
    return cls(**values)


class _Reader:
    def __init__(self, table: Mapping[str, Any], source: str, prefix: str) -> None:
        self.table = table
        self.source = source
        self.prefix = prefix

    def _where(self, key: str) -> str:
        return f"{self.prefix}.{key}"

    def get(self, key: str, kind: type[str], default: Any) -> Any:
        value = self.table.get(key, default)
        if value is not None and not isinstance(value, kind):
            raise ConfigError(self.source, self._where(key), "must be a string")
        return value

    def get_list(self, key: str) -> list[str]:
        value = self.table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.source, self._where(key), "must be a list of strings")
        return list(value)

    def get_number(self, key: str, default: float, *, minimum: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(self.source, self._where(key), f"must be a number >= {minimum}")
        return float(value)

    def get_enum(self, key: str, enum: type[Any], default: Any) -> Any:
        value = self.table.get(key, default)
        try:
            return enum(value)
        except ValueError:
            choices = ", ".join(str(member.value) for member in enum)
            raise ConfigError(self.source, self._where(key), f"must be one of {choices}") from None
