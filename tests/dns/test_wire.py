"""The lean codec against dnspython's parser, the reference.

Hypothesis builds responses with dnspython (names with any octets, every record type we read and
some we skip, CNAME chains, SOA records at and above the name, duplicates, TTLs with the top bit
set, extended RCODEs, compression as dnspython writes it); both parsers must reach the same
outcome. Then the same messages are cut, flipped and spliced: the lean parser may refuse them
(WireError) but must never raise anything else, and where both parsers accept a mangled message
they must still agree.
"""

from __future__ import annotations

import contextlib
import ipaddress

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.HINFO
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mailwarden.dns import MX, TXT, NoData, NXDomain, RdType
from mailwarden.dns._convert import convert_rdata, name_to_wire
from mailwarden.dns.names import normalize
from mailwarden.dns.wire import (
    ServerError,
    WireError,
    build_query,
    interpret,
    matches,
    name_text,
    parse,
    question,
    read_name,
)

IN = dns.rdataclass.IN
OUR_TYPES = list(RdType)
QUERY_ID = 0x5A5A

# ---------------------------------------------------------------------------- generators

ldh_label = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12
).map(str.encode)
any_label = st.binary(min_size=1, max_size=12)
label = st.one_of(ldh_label, ldh_label, ldh_label, any_label)


@st.composite
def names(draw: st.DrawFn, base: dns.name.Name | None = None) -> dns.name.Name:
    """A name, often below `base` (so SOA and chain owners share suffixes and compress)."""
    labels = draw(st.lists(label, min_size=0 if base is not None else 1, max_size=4))
    suffix = base.labels if base is not None else (b"",)
    return dns.name.Name([*labels, *suffix])


def rdata_for(draw: st.DrawFn, rdtype: str, pool: list[dns.name.Name]) -> dns.rdata.Rdata:
    target = draw(st.sampled_from(pool))
    if rdtype == "A":
        return dns.rdtypes.IN.A.A(
            IN, dns.rdatatype.A, str(ipaddress.IPv4Address(draw(st.binary(min_size=4, max_size=4))))
        )
    if rdtype == "AAAA":
        return dns.rdtypes.IN.AAAA.AAAA(
            IN,
            dns.rdatatype.AAAA,
            str(ipaddress.IPv6Address(draw(st.binary(min_size=16, max_size=16)))),
        )
    if rdtype == "MX":
        return dns.rdtypes.ANY.MX.MX(IN, dns.rdatatype.MX, draw(st.integers(0, 65535)), target)
    if rdtype == "TXT":
        strings = draw(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
        return dns.rdtypes.ANY.TXT.TXT(IN, dns.rdatatype.TXT, strings)
    if rdtype == "SOA":
        serial, refresh, retry, expire, minimum = draw(
            st.lists(st.integers(0, 2**32 - 1), min_size=5, max_size=5)
        )
        return dns.rdtypes.ANY.SOA.SOA(
            IN,
            dns.rdatatype.SOA,
            target,
            draw(st.sampled_from(pool)),
            serial,
            refresh,
            retry,
            expire,
            minimum,
        )
    if rdtype == "HINFO":  # a type we skip
        return dns.rdtypes.ANY.HINFO.HINFO(IN, dns.rdatatype.HINFO, b"cpu", b"os")
    if rdtype == "SRV":  # a type we skip, with a name inside
        return dns.rdtypes.IN.SRV.SRV(IN, dns.rdatatype.SRV, 1, 2, 3, target)
    cls = {
        "CNAME": dns.rdtypes.ANY.CNAME.CNAME,
        "NS": dns.rdtypes.ANY.NS.NS,
        "PTR": dns.rdtypes.ANY.PTR.PTR,
    }[rdtype]
    return cls(IN, dns.rdatatype.from_text(rdtype), target)


ttls = st.one_of(st.integers(0, 86_400), st.integers(0, 2**32 - 1))
RECORD_TYPES = ["A", "AAAA", "MX", "TXT", "CNAME", "NS", "PTR", "SOA", "HINFO", "SRV"]


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, str, RdType]:
    """A response as a server could send it, and the question it answers."""
    zone = draw(names())
    qname = draw(names(zone))
    rdtype = draw(st.sampled_from(OUR_TYPES))
    pool = [qname, zone, *draw(st.lists(names(zone), min_size=1, max_size=4))]
    response = dns.message.QueryMessage(id=QUERY_ID)  # make_query would draw a random ID
    response.flags = dns.flags.QR | dns.flags.RD | dns.flags.RA
    response.find_rrset(
        response.question, qname, IN, dns.rdatatype.from_text(rdtype.value), create=True
    )
    if draw(st.booleans()):
        response.use_edns(0, 0, 1232)
    response.set_rcode(draw(st.sampled_from([0] * 8 + [3] * 3 + [2, 5, 1, 4, 16])))

    def records(section: list[dns.rrset.RRset], count: int, types: list[str]) -> None:
        for _ in range(count):
            owner = draw(st.sampled_from([qname, *pool]))
            kind = draw(st.sampled_from(types))
            rdata = rdata_for(draw, kind, pool)
            rrset = dns.rrset.RRset(owner, IN, rdata.rdtype)
            rrset.add(rdata, draw(ttls))
            section.append(rrset)

    # Chains: qname -> pool member CNAMEs, then records of the type asked for.
    records(
        response.answer, draw(st.integers(0, 5)), [rdtype.value] * 4 + ["CNAME"] * 2 + RECORD_TYPES
    )
    records(response.authority, draw(st.integers(0, 3)), ["SOA", "SOA", "NS"])
    records(response.additional, draw(st.integers(0, 2)), ["A", "AAAA"])
    wire = response.to_wire(max_size=65535, want_shuffle=False)  # compressed as dnspython does
    if draw(st.booleans()):  # the same records twice: an RRset is a set
        again = dns.message.from_wire(wire)
        for rrset in list(again.answer):
            again.answer.append(rrset)
        wire = again.to_wire(max_size=65535, want_shuffle=False)
    text = normalize(qname.to_text())
    try:  # a label ending in an escaped dot does not survive normalize(): not a name we ask
        assume(name_to_wire(text).lower() == qname.to_wire().lower())
    except ValueError:
        assume(False)
    return wire, text, rdtype


# ---------------------------------------------------------------------------- the two readers


def reference(wire: bytes, text: str, rdtype: RdType) -> tuple[object, ...]:
    """What the response means, read by dnspython (the resolver's rules, RFC 2308 §5)."""
    try:
        message = dns.message.from_wire(wire)
    except Exception:
        return ("malformed",)
    qname = dns.name.from_wire(name_to_wire(text), 0)[0]
    if (
        not message.flags & dns.flags.QR
        or message.opcode() != 0
        or message.id != QUERY_ID
        or len(message.question) != 1
        or message.question[0].name != qname
        or message.question[0].rdtype != dns.rdatatype.from_text(rdtype.value)
        or message.question[0].rdclass != IN
    ):
        return ("unmatched",)
    rcode = message.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return ("error",)
    try:
        chain = message.resolve_chaining()  # type: ignore[attr-defined]
    except (dns.message.ChainTooLong, dns.message.AnswerForNXDOMAIN):
        return ("error",)
    if chain.answer is not None:
        records = tuple(convert_rdata(rdtype, rd) for rd in chain.answer)
        return ("answer", records, chain.minimum_ttl)
    soa_found = False
    name = chain.canonical_name
    while True:
        try:
            message.find_rrset(message.authority, name, IN, dns.rdatatype.SOA)
        except KeyError:
            try:
                name = name.parent()
            except dns.name.NoParent:
                break
            continue
        soa_found = True
        break
    ttl = chain.minimum_ttl if soa_found else 0
    return ("nxdomain" if rcode == dns.rcode.NXDOMAIN else "nodata", ttl)


def lean(wire: bytes, text: str, rdtype: RdType) -> tuple[object, ...]:
    """The same, read by mailwarden's codec; only its own exceptions may come out."""
    q = question(text, rdtype)
    try:
        response = parse(wire)
    except WireError:
        return ("malformed",)
    if not matches(wire, QUERY_ID, q):
        return ("unmatched",)
    assert parse(wire, q) == response  # the transport's way: the question already matched
    try:
        answer = interpret(response, q)
    except ServerError:
        return ("error",)
    except NXDomain as exc:
        return ("nxdomain", exc.ttl)
    except NoData as exc:
        return ("nodata", exc.ttl)
    assert answer.name == text
    assert answer.rdtype is rdtype
    return ("answer", answer.records, answer.ttl)


def with_id(wire: bytes) -> bytes:
    return QUERY_ID.to_bytes(2, "big") + wire[2:]


# ---------------------------------------------------------------------------- properties


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses())
def test_both_readers_agree_on_what_dnspython_writes(case: tuple[bytes, str, RdType]) -> None:
    wire, text, rdtype = case
    wire = with_id(wire)
    expected = reference(wire, text, rdtype)
    assert expected[0] not in ("malformed", "unmatched")
    assert lean(wire, text, rdtype) == expected


mutations = st.lists(
    st.tuples(
        st.sampled_from(["cut", "flip", "set", "insert", "delete"]),
        st.integers(0, 2**16),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


def mutate(wire: bytes, steps: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(wire)
    for kind, where, value in steps:
        if not data:
            break
        at = where % len(data)
        if kind == "cut":
            del data[at:]
        elif kind == "flip":
            data[at] ^= 1 << (value % 8)
        elif kind == "set":
            data[at] = value
        elif kind == "insert":
            data.insert(at, value)
        else:
            del data[at]
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), mutations)
def test_mangled_messages_never_crash_and_agree_when_both_accept(
    case: tuple[bytes, str, RdType], steps: list[tuple[str, int, int]]
) -> None:
    wire, text, rdtype = case
    mangled = mutate(with_id(wire), steps)
    mine = lean(mangled, text, rdtype)  # raises only on a bug
    theirs = reference(mangled, text, rdtype)
    if mine[0] not in ("malformed", "unmatched") and theirs[0] not in ("malformed", "unmatched"):
        assert mine == theirs


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
@example(b"\x00" * 12)
@example(bytes.fromhex("5a5a8180000100010000000003777777076578616d706c6503636f6d0000010001c00c"))
def test_random_bytes_never_crash(data: bytes) -> None:
    lean(data, "www.example.com", RdType.A)
    with contextlib.suppress(WireError):
        parse(data)


def test_a_pointer_loop_is_refused() -> None:
    header = bytes.fromhex("5a5a81800001000100000000")
    loop = header + b"\x01a\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(WireError):
        parse(loop)
    forward = header + b"\xc0\x0e\x01a\x00" + b"\x00\x01\x00\x01"
    with pytest.raises(WireError, match="backwards"):
        read_name(forward, 12, len(forward))


@given(st.lists(label, min_size=0, max_size=5))
def test_names_read_as_dnspython_writes_them(labels: list[bytes]) -> None:
    try:
        name = dns.name.Name([*labels, b""])
    except dns.exception.DNSException:
        return
    wire = name.to_wire()
    assert wire is not None
    assert name_text(wire) == normalize(name.to_text())


name_text_input = st.one_of(
    st.lists(st.text("abcXYZ019-_", min_size=0, max_size=70), min_size=1, max_size=5).map(".".join),
    st.text(max_size=40),
)


@given(name_text_input)
def test_query_names_encode_as_dnspython_does(text: str) -> None:
    try:
        expected = name_to_wire(text).lower()
    except ValueError:
        expected = None
    try:
        got = question(text, RdType.A).name
    except ValueError:
        got = None
    assert got == expected


def test_query_layout() -> None:
    """RFC 1035 §4.1.1 header with RD, the question, and an OPT record of 1232 octets."""
    q = question("Mail.Example", RdType.MX)
    wire = build_query(0xBEEF, q)
    message = dns.message.from_wire(wire)
    assert message.id == 0xBEEF
    assert message.flags == dns.flags.RD
    assert message.question[0].name == dns.name.from_text("mail.example.")
    assert message.question[0].rdtype == dns.rdatatype.MX
    assert (message.edns, message.payload) == (0, 1232)
    assert dns.message.from_wire(build_query(1, q, payload=0)).edns == -1


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        (lambda w: w, True),
        (lambda w: b"\x00\x01" + w[2:], False),  # another ID
        (lambda w: w[:2] + bytes([w[2] & 0x7F]) + w[3:], False),  # not a response (QR=0)
        (lambda w: w[:2] + bytes([w[2] | 0x28]) + w[3:], False),  # opcode 5 (UPDATE)
        (lambda w: w[:5] + b"\x02" + w[6:], False),  # two questions
        (lambda w: w.replace(b"\x04mail", b"\x04mall", 1), False),  # another name
        (lambda w: w.replace(b"\x04mail", b"\x04MAIL", 1), True),  # same name, other case
        (lambda w: w[:25] + b"\x00\x10" + w[27:], False),  # another type (TXT)
        (lambda w: w[:27] + b"\x00\x03" + w[29:], False),  # another class (CH)
        (lambda w: w[:20], False),  # cut in the question
    ],
)
def test_what_a_response_must_repeat(change: object, accepted: bool) -> None:
    q = question("mail.example", RdType.MX)
    query = dns.message.from_wire(build_query(QUERY_ID, q))
    response = dns.message.make_response(query).to_wire()
    assert matches(change(response), QUERY_ID, q) is accepted  # type: ignore[operator]


def test_typed_records_and_rcodes() -> None:
    q = question("example.test", RdType.MX)
    query = dns.message.from_wire(build_query(QUERY_ID, q))
    response = dns.message.make_response(query)
    response.answer.append(
        dns.rrset.from_text("example.test.", 300, "IN", "MX", "10 MX.Example.TEST.")
    )
    answer = interpret(parse(response.to_wire()), q)
    assert (answer.records, answer.ttl) == ((MX(10, "mx.example.test"),), 300)
    txt = question("example.test", RdType.TXT)
    response = dns.message.make_response(dns.message.from_wire(build_query(QUERY_ID, txt)))
    response.answer.append(dns.rrset.from_text("example.test.", 60, "IN", "TXT", '"a" "b"'))
    assert interpret(parse(response.to_wire()), txt).records == (TXT((b"a", b"b")),)
    for rcode, detail in [(2, "servfail"), (5, "refused"), (1, "formerr"), (4, "notimp")]:
        response.set_rcode(rcode)
        with pytest.raises(ServerError, match=detail):
            interpret(parse(response.to_wire()), txt)
    response.set_rcode(0)
    response.use_edns(0, 0, 1232)
    response.set_rcode(dns.rcode.BADVERS)  # RFC 6891 §6.1.3: 16, the upper bits in the OPT TTL
    with pytest.raises(ServerError, match="rcode 16"):
        interpret(parse(response.to_wire()), txt)
