"""iprev: does the client's reverse DNS name lead back to it? (RFC 8601 §3)

`check_iprev(resolver, ip)` looks up the PTR names of the client address and the addresses of
each name (at most `MAX_PTR_NAMES`, concurrently); the result passes when one name maps back.
The `IprevResult` carries the RFC's result word, a reason code, every PTR name, the confirmed
name and a reason; the policy names and scores it (`mailwarden.policy.iprev_symbols`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mailwarden.dns import (
    IPAddress,
    NoData,
    NXDomain,
    RdType,
    Resolver,
    TemporaryFailure,
    is_domain_name,
    normalize,
    parse_ip,
    reverse_pointer,
)
from mailwarden.dns.cache import gather_lookups

__all__ = [
    "MAX_PTR_NAMES",
    "IprevReason",
    "IprevResult",
    "IprevStatus",
    "check_iprev",
]

# Forward lookups made for at most this many PTR names; the rest are ignored (as RFC 7208
# §4.6.4 does for "ptr"): a long PTR set must not multiply our DNS traffic.
MAX_PTR_NAMES = 10


class IprevStatus(StrEnum):
    """RFC 8601 §2.7.3 / §3 result words."""

    PASS = "pass"
    FAIL = "fail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class IprevReason(StrEnum):
    """Why the result is what it is, in RFC 8601 §3 terms (beside the words)."""

    CONFIRMED = "confirmed"  # a PTR name resolves back to the address: pass
    NOT_CONFIRMED = "not-confirmed"  # forward lookups done, none names the address: fail
    NO_PTR = "no-ptr"  # no PTR data published: permerror
    MALFORMED_PTR = "malformed-ptr"  # PTR data, but no usable name in it: permerror
    DNS_ERROR = "dns-error"  # a transient DNS error prevented a final answer: temperror


@dataclass(frozen=True, slots=True)
class IprevResult:
    """The iprev outcome. `name` is the PTR name confirmed by its forward lookup (pass only);
    `names` are all PTR names found; `reason` says why on anything but pass."""

    result: IprevStatus
    ip: IPAddress
    reason_code: IprevReason
    names: tuple[str, ...] = ()
    name: str | None = None
    reason: str = ""
    dns_queries: int = 0

    @property
    def policy_iprev(self) -> str:
        """The value of the `policy.iprev` property: the address tested (RFC 8601 §2.7.3)."""
        return str(self.ip)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this result, for every command that shows one."""
        return {
            "ip": str(self.ip),
            "result": self.result.value,
            "reason_code": self.reason_code.value,
            "name": self.name,
            "names": list(self.names),
            "reason": self.reason,
            "policy_iprev": self.policy_iprev,
            "dns_queries": self.dns_queries,
        }


def _result(
    status: IprevStatus,
    ip: IPAddress,
    code: IprevReason,
    reason: str,
    queries: int,
    names: tuple[str, ...] = (),
    name: str | None = None,
) -> IprevResult:
    return IprevResult(status, ip, code, names, name, reason, queries)


async def check_iprev(resolver: Resolver, ip: IPAddress | str) -> IprevResult:
    """RFC 8601 §3: reverse lookup of `ip`, then a forward lookup of each name found."""
    address = parse_ip(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    try:
        answer = await resolver.resolve(reverse_pointer(address), RdType.PTR)
    except (NXDomain, NoData) as exc:
        # RFC 8601 §3: no PTR data published is a permerror.
        return _result(
            IprevStatus.PERMERROR, address, IprevReason.NO_PTR, f"no PTR record ({exc.kind})", 1
        )
    except TemporaryFailure as exc:
        return _result(
            IprevStatus.TEMPERROR,
            address,
            IprevReason.DNS_ERROR,
            f"PTR lookup failed: {exc.detail}",
            1,
        )
    names = tuple(dict.fromkeys(normalize(n) for n in answer.names()))
    usable = [n for n in names if is_domain_name(n)][:MAX_PTR_NAMES]
    if not usable:
        return _result(
            IprevStatus.PERMERROR,
            address,
            IprevReason.MALFORMED_PTR,
            "no usable PTR name (malformed records)",
            1,
            names,
        )
    rdtype = RdType.A if address.version == 4 else RdType.AAAA
    outcomes = await gather_lookups(resolver, *(_forward(resolver, n, rdtype) for n in usable))
    queries = 1 + len(usable)
    temporary: list[str] = []
    for name, outcome in zip(usable, outcomes, strict=True):
        if isinstance(outcome, TemporaryFailure):
            temporary.append(name)
        elif address in outcome:
            return _result(
                IprevStatus.PASS, address, IprevReason.CONFIRMED, "", queries, names, name
            )
    if temporary:
        # RFC 8601 §3: a transient error prevented a final answer for some name.
        return _result(
            IprevStatus.TEMPERROR,
            address,
            IprevReason.DNS_ERROR,
            f"forward lookup failed temporarily for {', '.join(temporary)}",
            queries,
            names,
        )
    # RFC 8601 §3: forward lookups completed (or had no data) without naming the client.
    return _result(
        IprevStatus.FAIL,
        address,
        IprevReason.NOT_CONFIRMED,
        f"no PTR name resolves back to {address} (checked {', '.join(usable)})",
        queries,
        names,
    )


async def _forward(
    resolver: Resolver, name: str, rdtype: RdType
) -> set[IPAddress] | TemporaryFailure:
    try:
        answer = await resolver.resolve(name, rdtype)
    except (NXDomain, NoData):
        return set()
    except TemporaryFailure as exc:
        return exc
    return set(answer.addresses())
