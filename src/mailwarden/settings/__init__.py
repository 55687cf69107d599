"""mailwarden.settings: one typed, frozen `Settings` for the whole product, from one TOML file.

    settings = load_settings("mailwarden.toml", overrides={"gateway.listen": ("...", "--listen")})

Sections: `[dns]` (servers, zones, timeout, retries), `[gateway]` (with `limits`, `timeouts`,
`tls`), `[policy]` (with `thresholds`, `scores`), `[dnsbl]`, `[dmarc]`, `[deadlines]`,
`[greylist]`, `[submission]` (the submission server, with its rate limits), `[policy_service]`
(the Postfix policy service), `[signing]` (DKIM signing and key rotation), `[forwarding]`
(aliases, SRS, ARC sealing), `[reports]` (DMARC reports: recording, sending, reading; in
`mailwarden.reports`), `[http]` (the HTTP API), `[transactions]` (the store of recent
transactions the dashboard reads; in `mailwarden.transactions`) and `[milter]` (the milter
front end). Every
key has its default here (or in the section's own dataclass), so no file is needed; an unknown
table or key is an error that names it. Command-line options override keys through the same
reader, so they are checked the same way and their errors name the option.
`examples/mailwarden.toml` documents every key (a test keeps it so).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mailwarden.dmarc import Discovery
from mailwarden.dns import is_domain_name, normalize
from mailwarden.dnsbl import DEFAULT_LISTS, DNSList, ListConfigError, parse_list
from mailwarden.greylist import GreylistConfig
from mailwarden.policy import PolicyConfig
from mailwarden.reports import ReportSettings
from mailwarden.schema import InvalidSetting, setting
from mailwarden.signing import SigningSettings
from mailwarden.transactions import TransactionSettings

from .errors import ConfigError
from .forwarding import ForwardingSettings, build_forwarder, build_srs, srs_secret_path
from .gateway import (
    BareLineEnding,
    DownstreamProtocol,
    GatewaySettings,
    Network,
    SMTPLimits,
    StrictAction,
    Timeouts,
    TLSSettings,
    default_hostname,
    parse_hostport,
)
from .http import HTTPSettings, is_loopback, read_token
from .milter import MilterSettings
from .policy_service import GreylistMode, PolicyServiceSettings, SPFMode, UnixPath, parse_listen
from .reader import Origin, read_section
from .submission import (
    Argon2Settings,
    BruteForceSettings,
    CompromiseSettings,
    RateLimits,
    RateOverride,
    RateSettings,
    SubmissionSettings,
)

__all__ = [
    "DEFAULT_DNSBL",
    "Argon2Settings",
    "BareLineEnding",
    "BruteForceSettings",
    "CompromiseSettings",
    "ConfigError",
    "DMARCSettings",
    "DNSListSettings",
    "DNSSettings",
    "Deadlines",
    "DownstreamProtocol",
    "ForwardingSettings",
    "GatewaySettings",
    "GreylistMode",
    "GreylistSettings",
    "HTTPSettings",
    "MilterSettings",
    "Network",
    "Override",
    "PolicyServiceSettings",
    "RateLimits",
    "RateOverride",
    "RateSettings",
    "SMTPLimits",
    "SPFMode",
    "Settings",
    "SigningSettings",
    "StrictAction",
    "SubmissionSettings",
    "TLSSettings",
    "Timeouts",
    "UnixPath",
    "build_forwarder",
    "build_srs",
    "default_hostname",
    "is_loopback",
    "load_settings",
    "parse_hostport",
    "parse_listen",
    "read_token",
    "settings_from_mapping",
    "srs_secret_path",
]

# Built-in lists used when the configuration names none: those usable without a key or a
# registration (the others are listed with what they need in mailwarden.dnsbl.DEFAULT_LISTS).
DEFAULT_DNSBL = tuple(lst.name for lst in DEFAULT_LISTS if not lst.needs_key)
_BUILT_IN = {lst.name: lst for lst in DEFAULT_LISTS}


def _server(text: object) -> str:
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise ValueError(f"expected HOST[:PORT], got {text!r}")
    return text.strip()


@dataclass(frozen=True, slots=True)
class DNSSettings:
    """`[dns]`: where answers come from. Servers are checked when the resolver is built."""

    servers: tuple[str, ...] = setting((), each=_server)  # HOST[:PORT]; none: resolv.conf
    zones: tuple[str, ...] = setting((), path=True)  # master files: answer from these only
    timeout: float = setting(5.0, min=0.01, max=60)  # seconds, one attempt
    retries: int = setting(2, min=0, max=10)  # further attempts after a timeout


def _built_in(name: object) -> str:
    if not isinstance(name, str) or name not in _BUILT_IN:
        raise ValueError(f"unknown list {name!r} (built in: {', '.join(sorted(_BUILT_IN))})")
    return name


def _custom_list(table: object) -> DNSList:
    if not isinstance(table, Mapping):
        raise ValueError("expected a table ([[dnsbl.lists]])")
    try:
        return parse_list(table)
    except ListConfigError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class DNSListSettings:
    """`[dnsbl]`: the built-in lists to use, and lists of your own."""

    use: tuple[str, ...] = setting(DEFAULT_DNSBL, each=_built_in)
    lists: tuple[DNSList, ...] = setting((), each=_custom_list)

    @property
    def selected(self) -> tuple[DNSList, ...]:
        """Every list to query: the built-in ones named in `use`, then the custom ones."""
        return tuple(_BUILT_IN[name] for name in self.use) + self.lists

    def validate(self) -> None:
        names = [lst.name for lst in self.selected]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidSetting("", f"lists named twice: {', '.join(twice)}")


def _sealer(text: object) -> str:
    if not isinstance(text, str) or not is_domain_name(normalize(text)):
        raise ValueError(f"expected a domain name, got {text!r}")
    return normalize(text)


@dataclass(frozen=True, slots=True)
class DMARCSettings:
    """`[dmarc]`: policy discovery, and the ARC sealers whose dmarc=pass we trust."""

    discovery: Discovery = Discovery.TREE_WALK
    trusted_sealers: tuple[str, ...] = setting((), each=_sealer)


def _redis_url(value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class GreylistSettings:
    """`[greylist]`: whether to greylist, how (GreylistConfig's keys), and where the state
    lives (`redis`: a URL shared by several gateways; None: SQLite in the data directory)."""

    enabled: bool = True
    redis: str | None = setting(None, convert=_redis_url)
    config: GreylistConfig = setting(default_factory=GreylistConfig, flatten=True)


@dataclass(frozen=True, slots=True)
class Deadlines:
    """`[deadlines]`: the seconds each stage of the checks may take; a check that runs out of
    time is a temperror, never a pass. The defaults keep the end-of-data answer within about
    20 s and the RCPT answer within about 10 s even with every DNS server silent, well inside
    what SMTP clients and Postfix's milter timeouts allow."""

    connect: float = setting(10.0, above=0, max=300)  # iprev and the address DNS lists
    helo: float = setting(10.0, above=0, max=300)  # HELO checks and SPF for HELO
    mail: float = setting(10.0, above=0, max=300)  # SPF for MAIL FROM
    rcpt: float = setting(10.0, above=0, max=300)  # hard DNS-list hits, RCPT greylisting
    data: float = setting(20.0, above=0, max=600)  # the end-of-data decision, end to end


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, typed and frozen; `source` names where it was read from."""

    dns: DNSSettings = setting(default_factory=DNSSettings)
    gateway: GatewaySettings = setting(default_factory=GatewaySettings)
    policy: PolicyConfig = setting(default_factory=PolicyConfig)
    dnsbl: DNSListSettings = setting(default_factory=DNSListSettings)
    dmarc: DMARCSettings = setting(default_factory=DMARCSettings)
    greylist: GreylistSettings = setting(default_factory=GreylistSettings)
    deadlines: Deadlines = setting(default_factory=Deadlines)
    submission: SubmissionSettings = setting(default_factory=SubmissionSettings)
    policy_service: PolicyServiceSettings = setting(default_factory=PolicyServiceSettings)
    signing: SigningSettings = setting(default_factory=SigningSettings)
    forwarding: ForwardingSettings = setting(default_factory=ForwardingSettings)
    reports: ReportSettings = setting(default_factory=ReportSettings)
    milter: MilterSettings = setting(default_factory=MilterSettings)
    http: HTTPSettings = setting(default_factory=HTTPSettings)
    transactions: TransactionSettings = setting(default_factory=TransactionSettings)
    source: str = setting("<defaults>", internal=True)


Override = tuple[Any, str]
"""A value for one dotted key (in its TOML form) and the option that gave it."""


def settings_from_mapping(
    data: Mapping[str, Any],
    source: str = "<config>",
    *,
    base: Path | None = None,
    overrides: Mapping[str, Override] | None = None,
) -> Settings:
    """Settings from parsed TOML (`base`: the directory relative paths are relative to),
    with `overrides` applied on top. Raises ConfigError."""
    merged = _with_overrides(data, overrides or {})
    origin = Origin(source, base, {key: option for key, (_, option) in (overrides or {}).items()})
    return replace(read_section(Settings, merged, origin, ""), source=source)


def load_settings(
    path: str | Path | None, *, overrides: Mapping[str, Override] | None = None
) -> Settings:
    """The settings of the TOML file `path` (the embedded defaults when None), with
    `overrides` from the command line. Raises ConfigError naming file, key and reason."""
    if path is None:
        return settings_from_mapping({}, "<defaults>", overrides=overrides)
    source = str(path)
    data = read_toml(path)
    return settings_from_mapping(
        data, source, base=Path(path).resolve().parent, overrides=overrides
    )


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; ConfigError saying what is wrong and where."""
    source = str(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
    except IsADirectoryError:
        raise ConfigError(source, "", "is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, "", f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None


def _with_overrides(data: Mapping[str, Any], overrides: Mapping[str, Override]) -> dict[str, Any]:
    merged: dict[str, Any] = _copy(data)
    for dotted, (value, _) in overrides.items():
        table = merged
        *parents, last = dotted.split(".")
        for name in parents:
            child = table.get(name)
            if not isinstance(child, dict):
                child = {}
                table[name] = child
            table = child
        table[last] = value
    return merged


def _copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
