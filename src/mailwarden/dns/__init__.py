"""mailwarden.dns: the one asynchronous DNS seam every check goes through.

`Resolver` is the interface; `StaticResolver` serves records from memory or master files (tests,
offline demos); the system resolver and the cache are in `system` and `cache` (the resolver's
sockets in `transport`, its codec in `wire`). Protocol code imports only this package, never
dnspython.
"""

from .counting import CountingResolver
from .names import is_domain_name, normalize, parse_ip, reverse_pointer, to_ascii
from .static import Failure, StaticResolver
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
