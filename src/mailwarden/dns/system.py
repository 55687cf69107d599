"""The real resolver: dnspython's asyncio stub resolver behind mailwarden's Resolver interface.

Queries go to the servers given (HOST or HOST:PORT) or to those of /etc/resolv.conf, with EDNS0,
a per-attempt timeout, retries after a timeout, and TCP when a UDP answer is truncated (dnspython
switches to TCP by itself on the TC bit).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ._convert import convert_rdata
from .names import normalize
from .types import Answer, NoData, NXDomain, RdType, TemporaryFailure

DEFAULT_PORT = 53


def parse_server(text: str) -> tuple[str, int]:
    """ "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:5353" -> (address, port)."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("expected [IPv6]:PORT")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    port = DEFAULT_PORT
    if port_text or value.endswith(":"):
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise ValueError(f"{port_text!r} is not a port number")
        port = int(port_text)
    return str(address), port


def _negative_ttl(response: dns.message.Message | None) -> int:
    """RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM) seconds."""
    if response is None:
        return 0
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(min(rrset.ttl, rrset[0].minimum))
    return 0


class SystemResolver:
    """Resolver over the network (UDP with TCP fallback, EDNS0)."""

    def __init__(
        self,
        servers: Sequence[str] = (),
        *,
        timeout: float = 5.0,
        retries: int = 2,
        edns_payload: int = 1232,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self._resolver = dns.asyncresolver.Resolver(configure=not servers)
        if servers:
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*parse_server(server)) for server in servers
            ]
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout  # one attempt; retries are counted here
        self._resolver.use_edns(0, 0, edns_payload)
        self._resolver.cache = None

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        """Look up `name`; a name that cannot exist in DNS (bad label) is NXDomain."""
        qname_text = normalize(name)
        try:
            qname = dns.name.from_text(qname_text or ".")
        except dns.exception.DNSException:
            raise NXDomain(qname_text, rdtype, "invalid name") from None
        for attempt in range(self.retries + 1):
            try:
                answer = await self._resolver.resolve(
                    qname, rdtype.value, search=False, raise_on_no_answer=True
                )
            except dns.resolver.NXDOMAIN as exc:
                response = (exc.kwargs.get("responses") or {}).get(qname)
                raise NXDomain(qname_text, rdtype, ttl=_negative_ttl(response)) from None
            except dns.resolver.NoAnswer as exc:
                ttl = _negative_ttl(exc.kwargs.get("response"))
                raise NoData(qname_text, rdtype, ttl=ttl) from None
            except dns.exception.Timeout:
                if attempt < self.retries:
                    continue
                raise TemporaryFailure(qname_text, rdtype, "timeout") from None
            except dns.resolver.NoNameservers as exc:
                raise TemporaryFailure(qname_text, rdtype, _servfail_detail(exc)) from None
            except (dns.exception.DNSException, OSError) as exc:
                raise TemporaryFailure(qname_text, rdtype, str(exc) or type(exc).__name__) from None
            rrset = answer.rrset
            if rrset is None:  # pragma: no cover - raise_on_no_answer guarantees an rrset
                raise NoData(qname_text, rdtype)
            records = tuple(convert_rdata(rdtype, rdata) for rdata in rrset)
            return Answer(qname_text, rdtype, records, int(rrset.ttl))
        raise TemporaryFailure(qname_text, rdtype, "timeout")  # pragma: no cover


def _servfail_detail(exc: dns.resolver.NoNameservers) -> str:
    text = str(exc)
    for rcode in ("SERVFAIL", "REFUSED", "FORMERR", "NOTIMP"):
        if rcode in text:
            return rcode.lower()
    return "no server answered"
