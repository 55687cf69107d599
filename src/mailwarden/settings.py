"""Settings of the checks shared by `mailwarden check` and the gateway, from one TOML file.

Tables read here: `[policy]` (see mailwarden.policy), `[dnsbl]` (`use`: names of built-in
lists; `[[dnsbl.lists]]`: lists of your own, keys as in `mailwarden.dnsbl.parse_list`) and
`[dmarc]` (`discovery`: "treewalk" or "psl"; `trusted_sealers`: ARC sealer domains whose
dmarc=pass may override a local DMARC fail). Other tables belong to other parts and are left
alone. Errors name the file, the key and the reason.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mailwarden.dmarc import Discovery
from mailwarden.dns import is_domain_name, normalize
from mailwarden.dnsbl import DEFAULT_LISTS, DNSList, ListConfigError, parse_list
from mailwarden.greylist import GreylistConfig, GreylistStage
from mailwarden.policy import ConfigError, PolicyConfig, policy_config_from_mapping

__all__ = [
    "DEFAULT_DNSBL",
    "CheckSettings",
    "GreylistSettings",
    "check_settings_from_mapping",
    "greylist_settings_from_mapping",
    "load_check_settings",
    "read_toml",
]

# Built-in lists used when the configuration names none: those usable without a key or a
# registration (the others are listed with what they need in mailwarden.dnsbl.DEFAULT_LISTS).
DEFAULT_DNSBL = tuple(lst.name for lst in DEFAULT_LISTS if not lst.needs_key)


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """What the checks need beyond the resolver."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    dnsbl_lists: tuple[DNSList, ...] = ()
    dmarc_discovery: Discovery = Discovery.TREE_WALK
    trusted_sealers: tuple[str, ...] = ()


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict (ConfigError naming the file when unreadable or malformed)."""
    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(str(path), "-", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"not valid TOML: {exc}") from None


def load_check_settings(path: str | Path) -> CheckSettings:
    return check_settings_from_mapping(read_toml(path), str(path))


def check_settings_from_mapping(
    raw: Mapping[str, Any], source: str = "<config>", *, default_dnsbl: bool = True
) -> CheckSettings:
    """Settings from a parsed configuration; `default_dnsbl` uses DEFAULT_DNSBL when the file
    says nothing about DNS lists."""
    policy_table = _table(raw, "policy", source)
    policy = policy_config_from_mapping(policy_table, source)
    dnsbl = _table(raw, "dnsbl", source)
    for key in dnsbl:
        if key not in ("use", "lists"):
            raise ConfigError(source, f"dnsbl.{key}", 'unknown key (known: "use", "lists")')
    by_name = {lst.name: lst for lst in DEFAULT_LISTS}
    use = dnsbl.get("use", list(DEFAULT_DNSBL) if default_dnsbl else [])
    if not isinstance(use, list) or not all(isinstance(n, str) for n in use):
        raise ConfigError(source, "dnsbl.use", "expected a list of list names")
    lists: list[DNSList] = []
    for name in use:
        if name not in by_name:
            raise ConfigError(
                source, "dnsbl.use", f"unknown list {name!r} (built in: {sorted(by_name)})"
            )
        lists.append(by_name[name])
    custom = dnsbl.get("lists", [])
    if not isinstance(custom, list):
        raise ConfigError(source, "dnsbl.lists", "expected an array of tables ([[dnsbl.lists]])")
    for index, table in enumerate(custom):
        if not isinstance(table, Mapping):
            raise ConfigError(source, f"dnsbl.lists[{index}]", "expected a table")
        try:
            lists.append(parse_list(table))
        except ListConfigError as exc:
            raise ConfigError(source, f"dnsbl.lists[{index}]", str(exc)) from None
    names = [lst.name for lst in lists]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(source, "dnsbl", f"lists named twice: {', '.join(duplicates)}")

    dmarc = _table(raw, "dmarc", source)
    for key in dmarc:
        if key not in ("discovery", "trusted_sealers"):
            raise ConfigError(
                source, f"dmarc.{key}", 'unknown key (known: "discovery", "trusted_sealers")'
            )
    try:
        discovery = Discovery(dmarc.get("discovery", Discovery.TREE_WALK.value))
    except ValueError:
        known = [d.value for d in Discovery]
        raise ConfigError(source, "dmarc.discovery", f"expected one of {known}") from None
    sealers = dmarc.get("trusted_sealers", [])
    if not isinstance(sealers, list) or not all(
        isinstance(s, str) and is_domain_name(s) for s in sealers
    ):
        raise ConfigError(source, "dmarc.trusted_sealers", "expected a list of domain names")
    return CheckSettings(
        policy=policy,
        dnsbl_lists=tuple(lists),
        dmarc_discovery=discovery,
        trusted_sealers=tuple(normalize(s) for s in sealers),
    )


def _table(raw: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(source, key, "expected a table")
    return value


@dataclass(frozen=True, slots=True)
class GreylistSettings:
    """The `[greylist]` table: whether to greylist, how, and where the state lives."""

    enabled: bool = True
    config: GreylistConfig = field(default_factory=GreylistConfig)
    redis_url: str | None = None  # None: SQLite under the data directory


_GREYLIST_NUMBERS = {
    "min_delay": float,
    "retry_window": float,
    "pass_ttl": float,
    "auto_allow_after": int,
    "ipv4_prefix": int,
    "ipv6_prefix": int,
}


def greylist_settings_from_mapping(
    raw: Mapping[str, Any], source: str = "<config>"
) -> GreylistSettings:
    """Keys: enabled, stage ("data" or "rcpt"), min_delay, retry_window, pass_ttl (seconds),
    auto_allow_after, ipv4_prefix, ipv6_prefix, spf_pool, exempt_networks, exempt_domains,
    exempt_recipients, redis (a redis:// URL; without it, SQLite in the data directory)."""
    table = _table(raw, "greylist", source)
    known = {f.name for f in fields(GreylistConfig)} | {"enabled", "redis"}
    known -= {"purge_interval", "reply_text"}
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"greylist.{key}"
        if key not in known:
            raise ConfigError(source, where, f"unknown key (known: {sorted(known)})")
        if key in _GREYLIST_NUMBERS:
            kind = _GREYLIST_NUMBERS[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(source, where, "expected a number")
            if not math.isfinite(value):
                raise ConfigError(source, where, "expected a finite number")
            if kind is int and not isinstance(value, int):
                raise ConfigError(source, where, "expected a whole number")
            values[key] = kind(value)
        elif key in ("enabled", "spf_pool"):
            if not isinstance(value, bool):
                raise ConfigError(source, where, "expected true or false")
            values[key] = value
        elif key == "stage":
            try:
                values[key] = GreylistStage(value)
            except ValueError:
                raise ConfigError(source, where, 'expected "data" or "rcpt"') from None
        elif key == "redis":
            if not isinstance(value, str) or not value.startswith(
                ("redis://", "rediss://", "unix://")
            ):
                raise ConfigError(source, where, "expected a redis:// URL")
            values[key] = value
        else:  # exempt_networks, exempt_domains, exempt_recipients
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(source, where, "expected a list of strings")
            if key == "exempt_networks":
                try:
                    values[key] = tuple(ipaddress.ip_network(v, strict=False) for v in value)
                except ValueError as exc:
                    raise ConfigError(source, where, str(exc)) from None
            else:
                values[key] = tuple(normalize(v) for v in value)
    enabled = values.pop("enabled", True)
    redis_url = values.pop("redis", None)
    try:
        config = GreylistConfig(**values)
    except ValueError as exc:
        raise ConfigError(source, "greylist", str(exc)) from None
    return GreylistSettings(enabled, config, redis_url)
