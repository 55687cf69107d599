"""The `[forwarding]` section: forwarding addresses, SRS (the Sender Rewriting Scheme) and the
ARC seal of forwarded mail."""

from __future__ import annotations

from dataclasses import dataclass

from mailwarden.dns import is_domain_name, normalize
from mailwarden.schema import InvalidSetting, setting

from .gateway import parse_hostport

__all__ = ["ForwardingSettings"]


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
