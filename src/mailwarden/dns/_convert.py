"""The one place that turns dnspython's objects into mailwarden's typed records."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tokenizer
import dns.zonefile

from .names import normalize
from .types import MX, TXT, RData, RdType


def convert_rdata(rdtype: RdType, rdata: dns.rdata.Rdata) -> RData:
    """One dnspython rdata as a typed record."""
    if rdtype is RdType.A or rdtype is RdType.AAAA:
        return ipaddress.ip_address(rdata.address)  # type: ignore[attr-defined]
    if rdtype is RdType.MX:
        return MX(int(rdata.preference), normalize(rdata.exchange.to_text()))  # type: ignore[attr-defined]
    if rdtype is RdType.TXT:
        return TXT(tuple(rdata.strings))  # type: ignore[attr-defined]
    if rdtype is RdType.SOA:
        return normalize(rdata.mname.to_text())  # type: ignore[attr-defined]
    return normalize(rdata.target.to_text())  # type: ignore[attr-defined]  # CNAME, NS, PTR


def known_type(rdtype: int) -> RdType | None:
    """The RdType for a dnspython type code, or None for types mailwarden does not use."""
    try:
        return RdType(dns.rdatatype.to_text(dns.rdatatype.RdataType(rdtype)))
    except ValueError:
        return None


def read_master_file(
    text: str, origin: str = "."
) -> Iterable[tuple[str, RdType | None, int, RData | None]]:
    """Records of an RFC 1035 master file as (owner, type, ttl, record).

    Records of types mailwarden does not use come as (owner, None, ttl, None): their owner
    exists (a query for another type there is NODATA, not NXDOMAIN).

    Raises ValueError with the parser's message when the file is malformed.
    """
    root = dns.name.from_text(origin)
    # dns.zonefile.read_rrsets refuses $ORIGIN/$TTL; its reader with directives allowed doesn't.
    manager = dns.zonefile.RRSetsReaderManager(root, False, dns.rdataclass.IN)
    try:
        with manager.writer(True) as txn:  # type: ignore[no-untyped-call]
            tokenizer = dns.tokenizer.Tokenizer(text, "<zone>")
            dns.zonefile.Reader(
                tokenizer, dns.rdataclass.IN, txn, allow_directives=True, default_ttl=3600
            ).read()
    except Exception as exc:  # dnspython raises several unrelated types for syntax errors
        raise ValueError(str(exc)) from exc
    rrsets: list[dns.rrset.RRset] = manager.rrsets
    for rrset in rrsets:
        rdtype = known_type(rrset.rdtype)
        owner = normalize(rrset.name.to_text())
        if rdtype is None:
            yield owner, None, rrset.ttl, None
            continue
        for rdata in rrset:
            yield owner, rdtype, rrset.ttl, convert_rdata(rdtype, rdata)
