"""The one place that turns dnspython's objects into mailwarden's typed records."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import dns.exception
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
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


def name_to_wire(text: str) -> bytes:
    """A name in presentation format (escapes, IDNA) as uncompressed wire form (RFC 1035 §3.1);
    ValueError when it is no valid domain name."""
    try:
        wire = dns.name.from_text(text or ".").to_wire()
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    assert wire is not None  # to_wire() without a file returns the bytes
    return wire


def known_type(rdtype: int) -> RdType | None:
    """The RdType for a dnspython type code, or None for types mailwarden does not use."""
    try:
        return RdType(dns.rdatatype.to_text(dns.rdatatype.RdataType(rdtype)))
    except ValueError:
        return None


_RdatasetKey = tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdatatype.RdataType]


class _IndexedTransaction(dns.zonefile.RRsetsReaderTransaction):
    """dnspython's rrsets-reader transaction, with the rdataset keys indexed by owner name.

    Before each record is stored, the reader checks CNAME-and-other-data against the node of
    the record's owner; dnspython finds that node by scanning every rdataset read so far, which
    made a zone of n records take O(n²) time (4,000 lines: about 30 s). Here the node is one
    dictionary lookup. What is stored, in which order, is unchanged.
    """

    def __init__(self, manager: dns.zonefile.RRSetsReaderManager) -> None:
        super().__init__(manager, True, False)  # type: ignore[no-untyped-call]
        self._names: dict[dns.name.Name, dict[_RdatasetKey, None]] = {}

    def _get_node(self, name: dns.name.Name) -> dns.node.Node | None:
        keys = self._names.get(name)
        if not keys:
            return None
        node = dns.node.Node()  # type: ignore[no-untyped-call]
        node.rdatasets = [self.rdatasets[key] for key in keys]
        return node

    def _put_rdataset(self, name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> None:
        key = (name, rdataset.rdtype, rdataset.covers)
        self.rdatasets[key] = rdataset
        self._names.setdefault(name, {})[key] = None

    def _delete_name(self, name: dns.name.Name) -> None:
        for key in self._names.pop(name, {}):
            del self.rdatasets[key]

    def _delete_rdataset(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        covers: dns.rdatatype.RdataType,
    ) -> None:
        key = (name, rdtype, covers)
        self.rdatasets.pop(key, None)
        keys = self._names.get(name)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._names[name]

    def _name_exists(self, name: dns.name.Name) -> bool:
        return bool(self._names.get(name))


class _IndexedManager(dns.zonefile.RRSetsReaderManager):
    def writer(self, replacement: bool = False) -> _IndexedTransaction:
        assert replacement
        return _IndexedTransaction(self)


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
    manager = _IndexedManager(root, False, dns.rdataclass.IN)
    try:
        with manager.writer(True) as txn:
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
