"""The linear master-file reader equals dnspython's reader, record for record, error for error.

`old_loader` is the loader as it was (dnspython's rrsets reader, untouched): the reference.
Generated zone texts mix every form the fast reader handles with forms it must leave to dnspython
(escapes, SOA, other types and classes, bad addresses, CNAME beside other data, parentheses,
names too long); for each, both readers give the same records or both refuse the file.
"""

from __future__ import annotations

import ipaddress

import dns.name
import dns.rdataclass
import dns.rrset
import dns.tokenizer
import dns.zonefile
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.dns import MX, RdType
from mailwarden.dns._convert import convert_rdata, known_type
from mailwarden.dns._convert import read_master_file as read_with_dnspython
from mailwarden.dns.master import MasterRecord, read_fast, read_master_file
from mailwarden.dns.names import normalize


def old_loader(text: str, origin: str = ".") -> list[MasterRecord]:
    """The loader before the speed-up (quadratic: it scanned every record set for each record)."""
    root = dns.name.from_text(origin)
    manager = dns.zonefile.RRSetsReaderManager(root, False, dns.rdataclass.IN)
    try:
        with manager.writer(True) as txn:
            tokenizer = dns.tokenizer.Tokenizer(text, "<zone>")
            dns.zonefile.Reader(
                tokenizer, dns.rdataclass.IN, txn, allow_directives=True, default_ttl=3600
            ).read()
    except Exception as exc:
        raise ValueError(str(exc)) from exc
    records: list[MasterRecord] = []
    rrsets: list[dns.rrset.RRset] = manager.rrsets
    for rrset in rrsets:
        rdtype = known_type(rrset.rdtype)
        owner = normalize(rrset.name.to_text())
        if rdtype is None:
            records.append((owner, None, rrset.ttl, None))
            continue
        records.extend((owner, rdtype, rrset.ttl, convert_rdata(rdtype, r)) for r in rrset)
    return records


def outcome(read: object, text: str, origin: str = ".") -> list[MasterRecord] | str:
    try:
        return list(read(text, origin))  # type: ignore[operator]
    except ValueError:
        return "refused"


# Fields of generated zone files: the first of each list are forms the fast reader reads,
# the rest (after None) are left to dnspython or refused by it.
OWNERS = ["@", "a", "B", "a.b", "*.w", "_dmarc", "x.test.", "X.Test.", ".", "0/25.2.0.192"]
TTLS = ["", "0", "300", "1h", "1H30m", "2w", "2147483647", None, "2147483648", "1h0", "5x"]
CLASSES = ["", "IN", "in", None, "CH", "CLASS1"]
RDATA: dict[str, list[str | None]] = {
    "A": ["192.0.2.1", "0.0.0.0", "255.255.255.255", None, "01.2.3.4", "1.2.3", "256.1.1.1"],
    "AAAA": [
        "2001:db8::1",
        "2001:DB8:0:0:0:0:0:1",
        "::",
        "::ffff:192.0.2.1",
        "1:2:3:4:5:6:7::",
        None,
        "1::2::3",
        "2001:db8::g",
        "::ffff:01.2.3.4",
    ],
    "MX": ["10 mx", "0 MX.Example.", "65535 @", None, "65536 mx", "x mx", "10", "10 a b"],
    "TXT": [
        '"v=spf1 -all"',
        '"part one " "part two"',
        "bare words",
        '""',
        '"semi;colon"',
        '"héllo"',
        '"' + "x" * 255 + '"',
        None,
        '"' + "x" * 256 + '"',
        '"esc\\"aped"',
        '"\\065"',
        '"unterminated',
        "",
    ],
    "CNAME": ["target", "Target.Example.", "@", "."],
    "NS": ["ns1", "ns1.example."],
    "PTR": ["host.example.", "host"],
    # SOA is read by the fast reader only (dnspython's refuses one below the root: see
    # test_soa_records_below_the_root_are_read), so it is not part of the differential test
    "HINFO": [None, '"cpu" "os"'],
    "SRV": [None, "0 5 5060 sip"],
    "TYPE1": [None, "192.0.2.9"],
    "FOO": [None, "bar"],
}


def choices(values: list[str | None], fast: bool) -> list[str]:
    """The forms the fast reader reads (fast), or all of them."""
    cut = values.index(None) if None in values else len(values)
    return [v for v in (values[:cut] if fast else values) if v is not None]


@st.composite
def record_lines(draw: st.DrawFn, fast: bool) -> str:
    owner = draw(st.sampled_from(["", *OWNERS]))
    ttl = draw(st.sampled_from(choices(TTLS, fast)))
    klass = draw(st.sampled_from(choices(CLASSES, fast)))
    rdtype = draw(st.sampled_from([t for t in sorted(RDATA) if choices(RDATA[t], fast)]))
    rdata = draw(st.sampled_from(choices(RDATA[rdtype], fast)))
    fields = [ttl, klass] if draw(st.booleans()) else [klass, ttl]
    text = " ".join(f for f in [*fields, draw(st.sampled_from([rdtype, rdtype.lower()]))] if f)
    if draw(st.integers(0, 5)) == 0 and rdata:
        words = rdata.split(" ")
        rdata = f"( {words[0]}\n  {' '.join(words[1:])} )"  # continued in parentheses
    line = f"{owner or ' '}\t{text} {rdata}"
    if draw(st.booleans()):
        line += ' ; a comment (with parentheses) "and quotes"'
    return line


DIRECTIVES = ["$TTL 600", "$ttl 1d", "$ORIGIN example.test.", "$ORIGIN sub", "$ORIGIN Other.Test."]
DIRECTIVES += ["", "   ", "; only a comment", None, "$TTL", "$INCLUDE /etc/passwd"]
DIRECTIVES += ["$GENERATE 1-3 h$ A 192.0.2.$"]


def zones(fast: bool) -> st.SearchStrategy[str]:
    line = st.one_of(record_lines(fast), st.sampled_from(choices(DIRECTIVES, fast)))
    return st.lists(line, min_size=1, max_size=25).map(lambda lines: "\n".join(lines) + "\n")


ORIGINS = st.sampled_from([".", "example.test", "test."])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(zones(fast=True), zones(fast=False)), ORIGINS)
def test_the_fast_reader_equals_the_old_loader(text: str, origin: str) -> None:
    expected = outcome(old_loader, text, origin)
    assert outcome(read_master_file, text, origin) == expected
    assert outcome(read_with_dnspython, text, origin) == expected  # the indexed fallback
    fast = read_fast(text, origin)
    if fast is not None:  # when the fast reader answers, dnspython agrees
        assert fast == expected


# Texts the fast reader reads itself (never leaving them to dnspython).
FAST_FORMS = {
    "directives": "$TTL 600\n$ORIGIN example.test.\n@ A 192.0.2.1\n",
    "inherited owner": "a.test. 60 IN A 192.0.2.1\n\t\tIN AAAA 2001:db8::1\n",
    "class first": "a.test. IN 60 MX 10 mx.a.test.\n",
    "ttl units": "a.test. 1h30m TXT x\n",
    "txt strings": 'a.test. TXT "v=spf1 " "ip4:192.0.2.0/24 -all" ; spf\n',
    "parentheses": 'a.test. TXT ( "one"\n   "two" ) ; two strings\n',
    "duplicates": "a.test. 60 A 192.0.2.1\na.test. 30 A 192.0.2.1\n",
    "cname replaced": "w.test. CNAME a.test.\nw.test. CNAME b.test.\n",
    "relative origin": "$ORIGIN test.\n$ORIGIN sub\nx A 192.0.2.1\n",
    "outside the origin": "a.test. A 192.0.2.1\nother. A garbage\n",
    "non-ascii text": 'a.test. TXT "héllo wörld"\n',
    "empty string": 'a.test. TXT ""\n',
}


@pytest.mark.parametrize("name", sorted(FAST_FORMS))
def test_forms_read_fast(name: str) -> None:
    origin = "test" if name == "outside the origin" else "."
    fast = read_fast(FAST_FORMS[name], origin)
    assert fast is not None
    assert fast == old_loader(FAST_FORMS[name], origin)


# Texts left to dnspython: its result (or its error) is the answer.
DNSPYTHON_FORMS = {
    "escape": 'a.test. TXT "semi\\;colon"\n',
    "other type": 'a.test. HINFO "cpu" "os"\n',
    "generic type": "a.test. TYPE1 192.0.2.1\n",
    "chaos class": "a.test. CH TXT x\n",
    "cname and other data": "a.test. A 192.0.2.1\na.test. CNAME b.test.\n",
    "bad address": "a.test. A 192.0.2.256\n",
    "leading zero": "a.test. A 192.0.2.01\n",
    "long string": 'a.test. TXT "' + "x" * 256 + '"\n',
    "long label": "a" * 64 + ".test. A 192.0.2.1\n",
    "long name": ("a" * 60 + ".") * 5 + " A 192.0.2.1\n",
    "unterminated quote": 'a.test. TXT "open\n',
    "unbalanced parenthesis": "a.test. TXT ( x\n",
    "include": "$INCLUDE /etc/hostname\n",
    "idna": "bücher.test. A 192.0.2.1\n",
    "carriage return": "a.test. A 192.0.2.1\r\n",
    "missing type": "a.test. 300\n",
    "trailing integer ttl": "a.test. 1h0 A 192.0.2.1\n",
}


@pytest.mark.parametrize("name", sorted(DNSPYTHON_FORMS))
def test_other_forms_are_left_to_dnspython(name: str) -> None:
    text = DNSPYTHON_FORMS[name]
    assert read_fast(text) is None
    assert outcome(read_master_file, text) == outcome(old_loader, text)


def test_records_come_typed() -> None:
    text = "$ORIGIN example.test.\n@ 300 MX 10 MX\n@ AAAA 2001:DB8::1\nw CNAME @\n"
    assert read_master_file(text) == [
        ("example.test", RdType.MX, 300, MX(10, "mx.example.test")),
        ("example.test", RdType.AAAA, 3600, ipaddress.ip_address("2001:db8::1")),
        ("w.example.test", RdType.CNAME, 3600, "example.test"),
    ]


def test_soa_records_below_the_root_are_read() -> None:
    """Real zone files start with their own SOA: dnspython's reader refused them without a
    zone origin ("non-origin SOA"); the fast reader keeps the MNAME."""
    from mailwarden.dns import RdType, StaticResolver

    text = """$ORIGIN a.example.
$TTL 3600
@ IN SOA ns1.a.example. hostmaster.a.example. (
        2026120101 ; serial
        1h 15m 1w 300 )
@ IN NS ns1
@ IN TXT "v=spf1 -all"
"""
    static = StaticResolver()
    static.load_master_text(text)
    assert static._records[("a.example", RdType.SOA)] == ["ns1.a.example"]
    assert static._records[("a.example", RdType.TXT)]
