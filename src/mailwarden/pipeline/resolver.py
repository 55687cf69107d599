"""The resolver the settings ask for: the system's (or given servers), or static zones."""

from __future__ import annotations

from pathlib import Path

from mailwarden.dns import Resolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.dns.system import SystemResolver, resolve_server
from mailwarden.settings import ConfigError, DNSSettings

__all__ = ["build_resolver"]


def build_resolver(dns: DNSSettings, source: str = "<settings>") -> Resolver:
    """Zones given: answer from them only (offline). Otherwise the configured servers, or the
    system's (resolv.conf). Always behind one cache. Raises ConfigError naming the key."""
    inner: Resolver
    if dns.zones:
        from mailwarden.dns import StaticResolver  # here: dnspython only for zones

        static = StaticResolver()
        for zone in dns.zones:
            try:
                text = Path(zone).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    source, "dns.zones", f"cannot read zone file {zone}: {exc.strerror or exc}"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(
                    source, "dns.zones", f"zone file {zone} is not UTF-8 text"
                ) from None
            try:
                static.load_master_text(text)
            except ValueError as exc:
                raise ConfigError(source, "dns.zones", f"bad zone file {zone}: {exc}") from None
        inner = static
    else:
        addresses: list[tuple[str, int]] = []
        for server in dns.servers:
            try:
                addresses.extend(resolve_server(server))  # a host name: resolved once, here
            except ValueError as exc:
                raise ConfigError(source, "dns.servers", f"bad server {server!r}: {exc}") from None
        inner = SystemResolver(addresses, timeout=dns.timeout, retries=dns.retries)
    return CachingResolver(inner)
