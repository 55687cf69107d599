"""RFC 1035 §5 master files read in one linear pass, with dnspython's reader as the reference.

dnspython's zone-file reader (`_convert.read_master_file`) is the reference, but it costs about
100 µs a record (a tokenizer that reads a character at a time and a transaction per record), so
a zone of 10,000 records took over a second to load before the gateway listened. This reader
handles the forms zone files for mailwarden are written in, one record a line or a record
continued in parentheses, with:

    $ORIGIN and $TTL; owner names absolute, relative, `@` or inherited (leading blank);
    TTL (digits or units such as 1h30m) and class IN in either order;
    A, AAAA, MX, TXT (quoted or bare strings), CNAME, NS, PTR, SOA (kept as its MNAME, as the
    static resolver serves it); comments.

SOA records are read here whatever their owner: dnspython's reader, given no zone origin,
refuses an SOA that is not at the root ("non-origin SOA"), which every real zone file has.
Anything else it does not guess at: a type mailwarden does not query, a backslash escape,
a non-ASCII name, $INCLUDE or $GENERATE, or any line it cannot read sends the whole text to
dnspython, so every error message and every rare form is exactly dnspython's. The records come
out as dnspython's reader gives them: grouped in record sets in order of first appearance,
duplicates dropped, the lowest TTL of a set for the whole set, a later CNAME replacing an earlier
one, and a CNAME beside other data refused (RFC 1034 §3.6.2). A differential test holds the two
readers equal.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from ._convert import read_master_file as read_with_dnspython
from .types import MX, TXT, RData, RdType

__all__ = ["MasterRecord", "read_fast", "read_master_file"]

MasterRecord = tuple[str, RdType | None, int, RData | None]
"""(owner, type, ttl, record); (owner, None, ttl, None) for a record set of another type."""

MAX_TTL = 2**31 - 1  # RFC 2181 §8
DEFAULT_TTL = 3600  # what the dnspython reader is given when the file has no $TTL

# A line without quotes, parentheses or backslashes: printable ASCII and tabs.
_PLAIN = re.compile(r"[\t\x20\x21\x23-\x27\x2a-\x5b\x5d-\x7e]*")
# The pieces of a line that has quotes or parentheses; group 3 is anything this reader
# leaves to dnspython (a backslash, an unterminated quote, a control character).
_PIECE = re.compile(r'[ \t]+|;.*|\(|\)|"([^"\\\n]*)"|([^ \t;()"\\\x00-\x08\x0a-\x1f\x7f]+)|(.)')
# Names whose text dnspython prints back unchanged (no escapes); labels of 1..63 octets.
_LABEL = r"[A-Za-z0-9_*/+=-]{1,63}"
_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?|\.")
_TTL_UNITS = re.compile(r"(?:[0-9]+[wdhmsWDHMS])+")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}")
_IPV4_LAST = re.compile(r"25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")
_TYPES = {"A", "AAAA", "MX", "TXT", "CNAME", "NS", "PTR", "SOA"}
# Class names and types dnspython would read differently from us: left to it.
_OTHER_CLASSES = re.compile(r"CH|CHAOS|HS|HESIOD|NONE|ANY|RESERVED0|CLASS[0-9]+", re.IGNORECASE)

Token = tuple[str, bool]  # (text, quoted)


class _Fallback(Exception):
    """Not a form this reader handles: dnspython reads the whole text."""


def read_master_file(text: str, origin: str = ".") -> list[MasterRecord]:
    """The records of an RFC 1035 master file; ValueError (dnspython's message) if malformed."""
    records = read_fast(text, origin)
    if records is None:
        records = list(read_with_dnspython(text, origin))
    return records


def read_fast(text: str, origin: str = ".") -> list[MasterRecord] | None:
    """The records, or None when the text needs dnspython's reader (see the module docstring)."""
    try:
        return _Reader(origin).read(text)
    except _Fallback:
        return None


class _RecordSet:
    __slots__ = ("owner", "rdtype", "records", "seen", "ttl")

    def __init__(self, owner: str, rdtype: RdType, ttl: int) -> None:
        self.owner = owner
        self.rdtype = rdtype
        self.ttl = ttl
        self.records: list[RData] = []
        self.seen: set[RData] = set()


class _Reader:
    def __init__(self, origin: str) -> None:
        self.zone_origin = _absolute(origin, "") if origin != "." else ""
        self.origin = self.zone_origin  # $ORIGIN
        self.last_owner = self.zone_origin
        self.default_ttl = DEFAULT_TTL  # $TTL; it always wins over the last stated TTL
        self.sets: dict[tuple[str, RdType], _RecordSet] = {}
        self.cname_owners: set[str] = set()
        self.other_owners: set[str] = set()  # owners with data other than CNAME

    def read(self, text: str) -> list[MasterRecord]:
        if "\\" in text or "\r" in text:
            raise _Fallback
        for tokens, leading in _logical_lines(text):
            self.line(tokens, leading)
        return [
            (rs.owner, rs.rdtype, rs.ttl, record)
            for rs in self.sets.values()
            for record in rs.records
        ]

    def line(self, tokens: list[Token], leading: bool) -> None:
        if not tokens:
            return
        if not leading:
            first, quoted = tokens[0]
            if quoted:
                raise _Fallback
            if first.startswith("$"):
                self.directive(first.upper(), tokens[1:])
                return
            self.last_owner = _absolute(first, self.origin)
            tokens = tokens[1:]
        owner = self.last_owner
        zone = self.zone_origin
        if zone and owner != zone and not owner.endswith("." + zone):
            return  # outside the zone: skipped, as dnspython's reader does
        words: list[str] = []  # the TTL, class and type fields: never quoted
        for word, quoted in tokens[:3]:
            if quoted:
                break
            words.append(word)
        ttl: int | None = None
        at = 0
        if at < len(words) and (value := _ttl(words[at])) is not None:
            ttl, at = value, at + 1
        if at < len(words) and _is_class(words[at]):
            at += 1
        if ttl is None:
            if at < len(words) and (value := _ttl(words[at])) is not None:
                ttl, at = value, at + 1
            else:
                ttl = self.default_ttl
        if at >= len(words):
            raise _Fallback
        type_name = words[at].upper()
        if type_name not in _TYPES:
            raise _Fallback
        rdtype = RdType(type_name)
        self.add(owner, rdtype, ttl, self.rdata(rdtype, tokens[at + 1 :]))

    def directive(self, name: str, args: list[Token]) -> None:
        if len(args) != 1 or args[0][1]:
            raise _Fallback
        if name == "$TTL":
            value = _ttl(args[0][0])
            if value is None:
                raise _Fallback
            self.default_ttl = value
        elif name == "$ORIGIN":
            self.origin = _absolute(args[0][0], self.origin)  # RFC 1035 §5.1: relative to it
        else:
            raise _Fallback

    def rdata(self, rdtype: RdType, tokens: list[Token]) -> RData:
        if rdtype is RdType.TXT:
            if not tokens:
                raise _Fallback
            strings = tuple(word.encode("utf-8") for word, _ in tokens)
            if any(len(s) > 255 for s in strings):
                raise _Fallback
            return TXT(strings)
        if any(quoted for _, quoted in tokens):
            raise _Fallback
        words = [word for word, _ in tokens]
        if rdtype is RdType.MX:
            if len(words) != 2 or not words[0].isdigit() or int(words[0]) > 65535:
                raise _Fallback
            return MX(int(words[0]), _absolute(words[1], self.origin))
        if rdtype is RdType.SOA:  # RFC 1035 §3.3.13: MNAME RNAME SERIAL REFRESH RETRY EXPIRE MIN
            if len(words) != 7 or not words[2].isdigit() or any(_ttl(w) is None for w in words[3:]):
                raise _Fallback
            return _absolute(words[0], self.origin)
        if len(words) != 1:
            raise _Fallback
        word = words[0]
        if rdtype is RdType.A:
            head = _IPV4.match(word)
            if head is None or not _IPV4_LAST.fullmatch(word, head.end()):
                raise _Fallback
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, word))
        if rdtype is RdType.AAAA:
            if not _IPV6.fullmatch(word):
                raise _Fallback
            try:
                return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, word))
            except OSError:
                raise _Fallback from None
        return _absolute(word, self.origin)  # CNAME, NS, PTR

    def add(self, owner: str, rdtype: RdType, ttl: int, record: RData) -> None:
        # RFC 1034 §3.6.2 (dnspython's check): a CNAME owner has no other data.
        if rdtype is RdType.CNAME:
            if owner in self.other_owners:
                raise _Fallback
            self.cname_owners.add(owner)
        else:
            if owner in self.cname_owners:
                raise _Fallback
            self.other_owners.add(owner)
        key = (owner, rdtype)
        rs = self.sets.get(key)
        if rs is None:
            rs = self.sets[key] = _RecordSet(owner, rdtype, ttl)
        else:
            rs.ttl = min(rs.ttl, ttl)
            if rdtype is RdType.CNAME:  # a singleton type: the later record replaces it
                rs.records.clear()
                rs.seen.clear()
        if record not in rs.seen:
            rs.seen.add(record)
            rs.records.append(record)


def _logical_lines(text: str) -> Iterable[tuple[list[Token], bool]]:
    """(tokens, starts with a blank) for each record, parentheses joined, comments dropped."""
    tokens: list[Token] = []
    leading = False
    depth = 0
    for line in text.split("\n"):
        if depth == 0 and _PLAIN.fullmatch(line):
            body = line.split(";", 1)[0]
            yield [(word, False) for word in body.split()], line[:1] in (" ", "\t")
            continue
        if depth == 0:
            tokens, leading = [], line[:1] in (" ", "\t")
        for match in _PIECE.finditer(line):
            piece = match.group()
            if match.group(3) is not None:
                raise _Fallback
            if match.group(2) is not None:
                if not piece.isascii():
                    raise _Fallback  # an IDNA name: dnspython's business
                tokens.append((piece, False))
            elif match.group(1) is not None:
                if depth == 0 and not tokens:
                    raise _Fallback
                tokens.append((match.group(1), True))
            elif piece == "(":
                if depth or not tokens:
                    raise _Fallback
                depth = 1
            elif piece == ")":
                if not depth:
                    raise _Fallback
                depth = 0
        if depth == 0:
            yield tokens, leading
            tokens = []
    if depth:
        raise _Fallback


def _absolute(token: str, origin: str) -> str:
    """A name of the file as mailwarden writes it: lower case, no trailing dot, root ""."""
    if token == "@":
        return origin
    if not _NAME.fullmatch(token):
        raise _Fallback
    if token.endswith("."):
        name = token[:-1]  # absolute ("." is the root, "")
    elif origin:
        name = f"{token}.{origin}"
    else:
        name = token
    if len(name) > 253:  # RFC 1035 §3.1: 255 octets in wire form
        raise _Fallback
    return name.lower()


def _ttl(word: str) -> int | None:
    """A TTL as dnspython reads one (seconds or units), None if the word is not one."""
    if word.isdigit() and word.isascii():
        value = int(word)
    elif _TTL_UNITS.fullmatch(word):
        value = 0
        for amount, unit in re.findall(r"([0-9]+)([A-Za-z])", word):
            value += int(amount) * _UNIT_SECONDS[unit.lower()]
    else:
        return None
    if value > MAX_TTL:
        raise _Fallback
    return value


def _is_class(word: str) -> bool:
    if word.upper() == "IN":
        return True
    if _OTHER_CLASSES.fullmatch(word):
        raise _Fallback
    return False
