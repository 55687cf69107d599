"""mailwarden.dns: the one asynchronous DNS seam every check goes through.

`Resolver` is the interface; `StaticResolver` serves records from memory or master files (tests,
offline demos); the system resolver and the cache are in `system` and `cache` (the resolver's
sockets in `transport`, its codec in `wire`). Protocol code imports only this package, never
dnspython.
"""

from typing import TYPE_CHECKING, Any

from .counting import CountingResolver
from .names import is_domain_name, normalize, parse_ip, reverse_pointer, to_ascii
from .types import (
    MX,
    TXT,
    Answer,
    DNSError,
    IPAddress,
    NoData,
    NXDomain,
    RData,
    RdType,
    Resolver,
    TemporaryFailure,
)

if TYPE_CHECKING:
    from .static import Failure, StaticResolver


def __getattr__(name: str) -> Any:
    """`StaticResolver` and `Failure` imported when first used: they read master files with
    dnspython, which a command on the system resolver never needs (13 ms of its start)."""
    if name in ("Failure", "StaticResolver"):
        from . import static

        return getattr(static, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MX",
    "TXT",
    "Answer",
    "CountingResolver",
    "DNSError",
    "Failure",
    "IPAddress",
    "NXDomain",
    "NoData",
    "RData",
    "RdType",
    "Resolver",
    "StaticResolver",
    "TemporaryFailure",
    "is_domain_name",
    "normalize",
    "parse_ip",
    "reverse_pointer",
    "to_ascii",
]
