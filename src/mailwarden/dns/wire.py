"""The lean DNS codec: queries out, answers in, for the eight record types mailwarden asks for.

It builds one query (RFC 1035 §4.1 with an EDNS0 OPT record, RFC 6891 §6.1.2) and reads one
response into mailwarden's typed outcome: an `Answer`, `NXDomain` or `NoData` with its negative
TTL (RFC 2308 §5), or a `ServerError` for an answer that is no answer (SERVFAIL, REFUSED, ...).

Reading is strict where a response could mislead and lenient only where the data is never used:
every record header is checked, the records of the types we use are decoded (A, AAAA, MX, TXT,
CNAME, NS, PTR, SOA; RFC 1035 §3.3, RFC 3596 §2.2), other record data is skipped by its length.
Compression pointers must point backwards (RFC 1035 §4.1.4), as dnspython requires, so a loop is
impossible. A malformed message raises `WireError`, and nothing else: the transport ignores such
a datagram as if it had not arrived, as dnspython's resolver does.

dnspython's parser is the reference: tests/dns/test_wire.py checks that both read every message
dnspython can build the same way, and that no mangled message makes this one raise anything but
`WireError`.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import NamedTuple

from .names import normalize
from .types import MX, TXT, Answer, NoData, NXDomain, RData, RdType

TYPE_CODES: dict[RdType, int] = {
    RdType.A: 1,
    RdType.NS: 2,
    RdType.CNAME: 5,
    RdType.SOA: 6,
    RdType.PTR: 12,
    RdType.MX: 15,
    RdType.TXT: 16,
    RdType.AAAA: 28,
}
_A, _NS, _CNAME, _SOA, _PTR, _MX, _TXT, _AAAA = 1, 2, 5, 6, 12, 15, 16, 28
_OPT = 41  # RFC 6891 §6.1.1
_IN = 1
_MAX_CHAIN = 16  # CNAME links followed in one answer, as dnspython (RFC 1034 §3.6.2)
_MAX_POINTER_HOPS = 16
_MAX_TTL = 0x7FFFFFFF  # RFC 2181 §8: a TTL with the top bit set is read as 0

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5  # RFC 1035 §4.1.1
RCODE_NAMES = {FORMERR: "formerr", SERVFAIL: "servfail", NOTIMP: "notimp", REFUSED: "refused"}

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_QTAIL = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_QUERY_FLAGS_COUNTS = _HEADER.pack(0, 0x0100, 1, 0, 0, 1)[2:]  # RD, one question, one OPT
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\Z")
# Bytes a label shows as themselves in presentation format (dnspython's `_escapify`).
_SAFE = bytes(c for c in range(0x21, 0x7F) if c not in b'"().;\\@$')


class WireError(ValueError):
    """A malformed DNS message."""


class ServerError(Exception):
    """A response that answers nothing: an error RCODE (RFC 1035 §4.1.1) or a broken chain."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Question(NamedTuple):
    """A query's question in wire form, ready to build queries and match responses."""

    text: str  # normalized, as Answer.name
    rdtype: RdType
    name: bytes  # uncompressed wire form, lower case
    tail: bytes  # QTYPE and QCLASS


_LENGTH = [bytes((n,)) for n in range(64)]
_TAILS = {rdtype: _QTAIL.pack(code, _IN) for rdtype, code in TYPE_CODES.items()}


def question(text: str, rdtype: RdType) -> Question:
    """The question for a normalized name; ValueError when it is no valid domain name
    (a label over 63 octets or empty, a name over 255 octets: RFC 1035 §2.3.4)."""
    if not text:
        name = b"\x00"
    elif len(text) <= 253 and _PLAIN_NAME.match(text):
        labels = text.encode("ascii").lower().split(b".")
        name = b"".join([_LENGTH[len(label)] + label for label in labels]) + b"\x00"
    else:  # escapes, other characters, IDNA: the presentation-format rules dnspython knows
        from ._convert import name_to_wire  # here: plain names never import dnspython

        name = name_to_wire(text).lower()
    return Question(text, rdtype, name, _TAILS[rdtype])


def build_query(query_id: int, q: Question, payload: int = 1232) -> bytes:
    """A recursive query (RD) with EDNS0 advertising `payload` octets (RFC 6891 §6.2.5);
    payload 0 sends no OPT record."""
    if not payload:
        return _U16.pack(query_id) + _HEADER.pack(0, 0x0100, 1, 0, 0, 0)[2:] + q.name + q.tail
    opt = b"\x00" + _RR.pack(_OPT, payload, 0, 0)
    return _U16.pack(query_id) + _QUERY_FLAGS_COUNTS + q.name + q.tail + opt


def matches(data: bytes, query_id: int, q: Question) -> bool:
    """Is `data` a response to this query: QR set, opcode QUERY, the same ID and exactly the same
    question (RFC 5452 §9.1; names compare without regard to case, RFC 4343)? Only header and
    question are looked at: a forged or stray datagram costs next to nothing."""
    end = 12 + len(q.name)
    return (
        len(data) >= end + 4
        and data[0] == query_id >> 8
        and data[1] == query_id & 0xFF
        and data[2] & 0xF8 == 0x80  # QR=1, opcode 0
        and data[4] == 0
        and data[5] == 1
        and data[12:end].lower() == q.name
        and data[end : end + 4] == q.tail
    )


def truncated(data: bytes) -> bool:
    """The TC bit (RFC 1035 §4.1.1): the answer did not fit, ask again over TCP (RFC 7766)."""
    return len(data) > 2 and bool(data[2] & 0x02)


def read_name(data: bytes, offset: int, limit: int) -> tuple[bytes, int]:
    """The name at `offset`, uncompressed (original case), and the offset after it.

    Labels must lie before `limit`; a pointer must point before every earlier part of the name
    and its target must end before the part that pointed at it (as dnspython checks).
    """
    parts: list[bytes] = []
    size = 1
    after = -1
    segment = biggest = offset
    pos = offset
    hops = 0
    while True:
        if pos >= limit:
            raise WireError("name runs past its end")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length < 64:
            end = pos + 1 + length
            if end > limit:
                raise WireError("label runs past its end")
            parts.append(data[pos:end])
            size += length + 1
            if size > 255:
                raise WireError("name longer than 255 octets")
            pos = end
        elif length >= 0xC0:
            if pos + 1 >= limit:
                raise WireError("compression pointer runs past its end")
            target = (length & 0x3F) << 8 | data[pos + 1]
            if after < 0:
                after = pos + 2
            if target >= biggest:
                raise WireError("compression pointer does not point backwards")
            hops += 1
            if hops > _MAX_POINTER_HOPS:
                raise WireError("compression pointer chain too long")
            biggest = target
            limit = segment
            segment = pos = target
        else:
            raise WireError("unknown label type")
    parts.append(b"\x00")
    return b"".join(parts), after if after >= 0 else pos


def name_text(wire: bytes) -> str:
    """A wire-form name in mailwarden's form: presentation format (RFC 1035 §5.1, special
    characters escaped as dnspython writes them), lower case, without trailing dot."""
    raw: list[bytes] = []
    pos = 0
    while wire[pos]:
        raw.append(wire[pos + 1 : pos + 1 + wire[pos]])
        pos += 1 + wire[pos]
    if not b"".join(raw).translate(None, _SAFE):  # the usual name: nothing to escape
        return b".".join(raw).decode("ascii").lower()
    labels = [
        "".join(
            chr(c) if c in _SAFE else f"\\{chr(c)}" if c > 0x20 and c < 0x7F else f"\\{c:03d}"
            for c in label
        )
        for label in raw
    ]
    return normalize(".".join(labels) + ".")


@dataclass(slots=True)
class _Record:
    owner: bytes  # lower case
    rtype: int
    rclass: int
    ttl: int
    value: RData | None
    target: bytes = b""  # CNAME: the target's wire form, lower case
    minimum: int = 0  # SOA: the MINIMUM field (RFC 2308 §4)


@dataclass(slots=True)
class Response:
    """One DNS response as far as mailwarden reads it."""

    id: int
    flags: int
    rcode: int  # with the EDNS extended bits (RFC 6891 §6.1.3)
    questions: list[tuple[bytes, int, int]]
    answer: list[_Record]  # class IN records of the types we use
    authority: list[_Record]  # class IN SOA records


def _record(data: bytes, rtype: int, start: int, end: int, record: _Record) -> None:
    """Decode the record data of a type we use, which must fill its RDLENGTH exactly."""
    size = end - start
    if rtype == _A:
        if size != 4:
            raise WireError("A record is not 4 octets")
        record.value = ipaddress.IPv4Address(data[start:end])
    elif rtype == _AAAA:
        if size != 16:
            raise WireError("AAAA record is not 16 octets")
        record.value = ipaddress.IPv6Address(data[start:end])
    elif rtype == _TXT:
        strings: list[bytes] = []
        pos = start
        while pos < end:
            stop = pos + 1 + data[pos]
            if stop > end:
                raise WireError("TXT string runs past its record")
            strings.append(data[pos + 1 : stop])
            pos = stop
        if not strings:
            raise WireError("TXT record without strings")  # RFC 1035 §3.3.14: one or more
        record.value = TXT(tuple(strings))
    elif rtype == _MX:
        if size < 3:
            raise WireError("MX record too short")
        exchange, pos = read_name(data, start + 2, end)
        if pos != end:
            raise WireError("MX record has trailing data")
        record.value = MX(_U16.unpack_from(data, start)[0], name_text(exchange))
    elif rtype == _SOA:
        mname, pos = read_name(data, start, end)
        _, pos = read_name(data, pos, end)
        if pos + 20 != end:
            raise WireError("SOA record has the wrong length")
        record.target = mname  # its text only when asked for (an SOA query): see `interpret`
        record.minimum = _U32.unpack_from(data, pos + 16)[0]
    else:  # CNAME, NS, PTR
        target, pos = read_name(data, start, end)
        if pos != end:
            raise WireError("name record has trailing data")
        record.value = name_text(target)
        record.target = target.lower()


_DECODED = frozenset((_A, _NS, _CNAME, _SOA, _PTR, _MX, _TXT, _AAAA))
_SINGLETON = frozenset((_CNAME, _SOA))  # an RRset of one record: the last one read wins


def parse(data: bytes, matched: Question | None = None) -> Response:
    """Read a response; WireError when it is malformed (and for nothing else).

    `matched`: the question `matches` has already found in `data` (one question, exactly that
    one), whose name then need not be read again."""
    try:
        return _parse(data, matched)
    except WireError:
        raise
    except (IndexError, struct.error, ValueError) as exc:  # bounds are checked; this is a net
        raise WireError(f"malformed message: {exc}") from None


def _skip_name(data: bytes, pos: int, size: int) -> int:
    """The offset after a name whose value is never used (authority and additional owners)."""
    while True:
        if pos >= size:
            raise WireError("name runs past the end")
        length = data[pos]
        if length == 0:
            return pos + 1
        if length >= 0xC0:
            if pos + 2 > size:
                raise WireError("compression pointer runs past the end")
            return pos + 2
        if length >= 64:
            raise WireError("unknown label type")
        pos += length + 1


def _parse(data: bytes, matched: Question | None) -> Response:
    size = len(data)
    if size < 12:
        raise WireError("shorter than a DNS header")
    query_id, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    questions: list[tuple[bytes, int, int]] = []
    if matched is not None:
        pos = 16 + len(matched.name)
        questions.append((matched.name, *_QTAIL.unpack(matched.tail)))
    else:
        pos = 12
        for _ in range(qdcount):
            name, pos = read_name(data, pos, size)
            if pos + 4 > size:
                raise WireError("question runs past the end")
            qtype, qclass = _QTAIL.unpack_from(data, pos)
            pos += 4
            questions.append((name.lower(), qtype, qclass))
    first = questions[0][0] if questions else b""
    rcode = flags & 0x0F
    answer: list[_Record] = []
    for _ in range(ancount):
        if data[pos] == 0xC0 and pos + 1 < size and data[pos + 1] == 12 and first:
            owner, pos = first, pos + 2  # the usual owner: a pointer to the question's name
        else:
            owner, pos = read_name(data, pos, size)
            owner = owner.lower()
        if pos + 10 > size:
            raise WireError("record header runs past the end")
        rtype, rclass, ttl, rdlength = _RR.unpack_from(data, pos)
        start = pos + 10
        pos = start + rdlength
        if pos > size:
            raise WireError("record data runs past the end")
        if rclass == _IN and rtype in _DECODED:
            record = _Record(owner, rtype, rclass, 0 if ttl > _MAX_TTL else ttl, None)
            _record(data, rtype, start, pos, record)
            answer.append(record)
    authority: list[_Record] = []
    for _ in range(nscount):
        owner_at = pos
        pos = _skip_name(data, pos, size)
        if pos + 10 > size:
            raise WireError("record header runs past the end")
        rtype, rclass, ttl, rdlength = _RR.unpack_from(data, pos)
        start = pos + 10
        pos = start + rdlength
        if pos > size:
            raise WireError("record data runs past the end")
        if rtype == _SOA and rclass == _IN:
            owner, _ = read_name(data, owner_at, size)
            record = _Record(owner.lower(), rtype, rclass, 0 if ttl > _MAX_TTL else ttl, None)
            _record(data, rtype, start, pos, record)
            authority.append(record)
    for _ in range(arcount):
        pos = _skip_name(data, pos, size)
        if pos + 10 > size:
            raise WireError("record header runs past the end")
        rtype, _, ttl, rdlength = _RR.unpack_from(data, pos)
        pos += 10 + rdlength
        if pos > size:
            raise WireError("record data runs past the end")
        if rtype == _OPT:
            rcode |= (ttl >> 24) << 4  # RFC 6891 §6.1.3: extended RCODE
    if pos != size:
        raise WireError("trailing data after the last record")
    return Response(query_id, flags, rcode, questions, answer, authority)


def _rrset(records: list[_Record], owner: bytes, rtype: int) -> tuple[list[_Record], int]:
    """The records of one RRset and its TTL, the smallest of its records' (RFC 2181 §5.2)."""
    found: list[_Record] = []
    ttl = 0xFFFFFFFF
    for record in records:
        if record.owner == owner and record.rtype == rtype:
            ttl = min(ttl, record.ttl)
            if rtype in _SINGLETON:
                found = [record]
            elif all(record.value != other.value for other in found):
                found.append(record)  # an RRset is a set (RFC 2181 §5)
    return found, ttl


def interpret(response: Response, q: Question) -> Answer:
    """The outcome of a response to `q` (which `matches` it): the records of the type asked
    for at the end of the CNAME chain starting at the name asked (RFC 1034 §4.3.2), its TTL the
    smallest along the chain, or NXDomain / NoData carrying their negative TTL; ServerError for
    an error RCODE, a chain of 16 CNAMEs or more, or records in an NXDOMAIN answer."""
    rcode = response.rcode
    if rcode != NOERROR and rcode != NXDOMAIN:
        raise ServerError(RCODE_NAMES.get(rcode, f"rcode {rcode}"))
    qtype = TYPE_CODES[q.rdtype]
    owner = q.name
    ttl = 0xFFFFFFFF
    hops = 0
    while True:
        found, rrset_ttl = _rrset(response.answer, owner, qtype)
        if found:
            if rcode == NXDOMAIN:
                raise ServerError("answer in an NXDOMAIN response")
            records: tuple[RData, ...]
            if qtype == _SOA:
                records = tuple(name_text(record.target) for record in found)
            else:
                records = tuple(record.value for record in found)  # type: ignore[misc]
            return Answer(q.text, q.rdtype, records, min(ttl, rrset_ttl))
        if qtype == _CNAME:
            break
        aliases, alias_ttl = _rrset(response.answer, owner, _CNAME)
        if not aliases:
            break
        hops += 1
        if hops >= _MAX_CHAIN:
            raise ServerError("CNAME chain too long")
        ttl = min(ttl, alias_ttl)
        owner = aliases[0].target
    negative = _negative_ttl(response, owner, ttl)
    if rcode == NXDOMAIN:
        raise NXDomain(q.text, q.rdtype, ttl=negative)
    raise NoData(q.text, q.rdtype, ttl=negative)


def _negative_ttl(response: Response, owner: bytes, ttl: int) -> int:
    """RFC 2308 §5: min(SOA TTL, SOA MINIMUM) of the SOA in the authority section whose owner is
    the nearest enclosing zone of the name the chain ended at (and no more than the chain's
    TTL); 0 without such an SOA."""
    name = owner
    while response.authority:
        found, soa_ttl = _rrset(response.authority, name, _SOA)
        if found:
            return min(ttl, soa_ttl, found[0].minimum)
        if name == b"\x00":
            break
        name = name[name[0] + 1 :]
    return 0
