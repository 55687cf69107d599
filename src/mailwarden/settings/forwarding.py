"""The `[forwarding]` section: forwarding addresses, SRS (the Sender Rewriting Scheme) and the
ARC seal of forwarded mail."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailwarden.dns import is_domain_name, normalize
from mailwarden.schema import InvalidSetting, setting
from mailwarden.srs import SRS, Aliases, Forwarder, ensure_secret_file, read_secrets

from .gateway import GatewaySettings, parse_hostport

__all__ = ["ForwardingSettings", "build_forwarder", "build_srs", "srs_secret_path"]


def _domain(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a domain name, got {value!r}")
    if value.strip() == "":
        return ""
    try:
        name = normalize(value.strip())
    except ValueError:
        name = ""
    if not is_domain_name(name) or "." not in name:
        raise ValueError(f"expected a domain name, got {value!r}")
    return name


def _domains(value: object) -> str:
    name = _domain(value)
    if not name:
        raise ValueError("expected a domain name, got an empty string")
    return name


def _relay_to(text: object) -> tuple[str, int] | None:
    if text == "":
        return None
    return parse_hostport(text, 25)  # type: ignore[arg-type]


def _separator(value: object) -> str:
    if value not in ("=", "-", "+"):
        raise ValueError(f'expected "=", "-" or "+", got {value!r}')
    return str(value)


@dataclass(frozen=True, slots=True)
class ForwardingSettings:
    """`[forwarding]`: which addresses forward where, and how the envelope is rewritten."""

    aliases: str = setting("", path=True)  # "address: target, target" a line; empty: none
    srs_domain: str = setting("", convert=_domain)  # the dedicated SRS domain
    srs_secret_file: str = setting("", path=True)  # empty: <data_dir>/srs.secret
    srs_max_age: int = setting(21, min=1, max=1000)  # days a bounce address stays valid
    srs_hash_length: int = setting(4, min=4, max=27)  # base64 characters of the HMAC
    srs_separator: str = setting("=", convert=_separator)  # after SRS0/SRS1 (libsrs2)
    exclude_domains: tuple[str, ...] = setting((), each=_domains)  # never rewritten
    relay_to: tuple[str, int] | None = setting(None, convert=_relay_to)  # None: gateway's
    arc_seal: bool = True  # seal forwarded mail with our verification results
    arc_domain: str = setting("", convert=_domain)  # empty: the SRS domain or a parent

    def validate(self) -> None:
        if self.aliases and not self.srs_domain:
            raise InvalidSetting("srs_domain", "forwarding (aliases) needs an SRS domain")

    @property
    def enabled(self) -> bool:
        """Forwarding is on when an alias file is configured."""
        return bool(self.aliases)


def srs_secret_path(forwarding: ForwardingSettings, data_dir: str) -> Path:
    """The SRS secret file: `srs_secret_file`, else <data_dir>/srs.secret."""
    return Path(forwarding.srs_secret_file or Path(data_dir) / "srs.secret")


def build_srs(
    forwarding: ForwardingSettings, data_dir: str, *, clock: Callable[[], float] = time.time
) -> SRS:
    """The SRS of these settings (the secret file is made when missing and not configured).
    ValueError (SecretFileError) naming the file when the secrets cannot be had, or when no
    SRS domain is configured."""
    if not forwarding.srs_domain:
        raise ValueError("no SRS domain: set [forwarding] srs_domain")
    path = srs_secret_path(forwarding, data_dir)
    secrets = read_secrets(path) if forwarding.srs_secret_file else ensure_secret_file(path)
    return SRS(
        forwarding.srs_domain,
        secrets,
        separator=forwarding.srs_separator,
        hash_length=forwarding.srs_hash_length,
        max_age=forwarding.srs_max_age,
        clock=clock,
    )


def build_forwarder(
    forwarding: ForwardingSettings,
    gateway: GatewaySettings,
    *,
    clock: Callable[[], float] = time.time,
) -> Forwarder:
    """The forwarding rules of these settings: SRS, the alias file, our domains. ValueError
    (AliasError, SecretFileError) naming the file that cannot be used."""
    srs = build_srs(forwarding, gateway.data_dir, clock=clock)
    aliases = Aliases.load(forwarding.aliases) if forwarding.aliases else Aliases({})
    srs_domain = forwarding.srs_domain
    for address in aliases.table:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain == srs_domain:
            # every address in the SRS domain is read as an SRS address: the alias would
            # never forward (silently); the SRS domain must be a dedicated one
            raise ValueError(
                f"{forwarding.aliases}: {address} is in the SRS domain {srs_domain}: give "
                "forwarding.srs_domain a domain of its own (e.g. srs." + srs_domain + ")"
            )
    return Forwarder(srs, aliases, (*gateway.local_domains, *forwarding.exclude_domains))
