"""Domain-name helpers shared by every protocol."""

from __future__ import annotations

import ipaddress
import re
import socket

from .types import IPAddress

# An LDH label (underscore allowed), 1..63 octets, no hyphen at either end; labels joined by dots
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DOMAIN_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def normalize(name: str) -> str:
    """Lower-case, without trailing dot: the form used for comparisons and cache keys."""
    return name.rstrip(".").lower()


def reverse_pointer(ip: IPAddress) -> str:
    """The in-addr.arpa or (nibble) ip6.arpa name of an address (RFC 1035 §3.5, RFC 3596 §2.5)."""
    return ip.reverse_pointer


def parse_ip(text: str) -> IPAddress:
    """Parse an address; an IPv4-mapped IPv6 address becomes the IPv4 address it carries."""
    text = text.strip()
    ip: IPAddress
    try:  # the C parsers first (strict, and several times faster); ipaddress says what is wrong
        if ":" not in text:
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
        if "%" not in text:  # no scope ids in mail (RFC 4291 §2.2 forms only)
            ip = ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, text))
        else:
            ip = ipaddress.ip_address(text)
    except OSError:
        ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_domain_name(name: str) -> bool:
    """Syntax of a host or domain name in A-label form: LDH labels (underscore allowed, as in
    service names) of 1..63 octets, 253 in all (RFC 1035 §2.3.4, RFC 1123 §2.1)."""
    name = name[:-1] if name.endswith(".") else name
    return 0 < len(name) <= 253 and _DOMAIN_NAME.fullmatch(name) is not None


def to_ascii(domain: str) -> str:
    """A-labels for a name given with U-labels (IDNA); ValueError when it cannot be converted."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{domain!r} is not a valid internationalized domain name") from exc
