"""SPF record syntax (RFC 7208 §4.5, §5, §6, §7.1, §12): parse a record into typed terms.

`parse_record` either returns a `Record` or raises `SPFSyntaxError`, whose message names the
offending term: a syntax error anywhere makes the whole record a permerror (RFC 7208 §4.6).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from enum import StrEnum

from mailwarden.frozen import quick_init


class SPFSyntaxError(ValueError):
    """The record (or an explanation string) does not follow the RFC 7208 grammar."""


class Qualifier(StrEnum):
    """RFC 7208 §4.6.2: the result a matching mechanism produces."""

    PASS = "+"
    FAIL = "-"
    SOFTFAIL = "~"
    NEUTRAL = "?"


class MechanismKind(StrEnum):
    ALL = "all"
    INCLUDE = "include"
    A = "a"
    MX = "mx"
    PTR = "ptr"
    IP4 = "ip4"
    IP6 = "ip6"
    EXISTS = "exists"


# Mechanisms whose evaluation queries DNS; each counts against the limit of 10 (RFC 7208 §4.6.4).
DNS_MECHANISMS = frozenset(
    {
        MechanismKind.INCLUDE,
        MechanismKind.A,
        MechanismKind.MX,
        MechanismKind.PTR,
        MechanismKind.EXISTS,
    }
)

MACRO_LETTERS = frozenset("slodiphcrtv")
EXP_ONLY_LETTERS = frozenset("crt")  # RFC 7208 §7.1: only in explanation strings
DELIMITERS = frozenset(".-+,/_=")


@dataclass(frozen=True, slots=True)
class Macro:
    """One `%{...}` expansion (RFC 7208 §7.1)."""

    letter: str  # lower-case macro letter
    digits: int | None  # keep this many right-hand parts
    reverse: bool
    delimiters: str  # split characters; "" means "."
    url_escape: bool  # the letter was upper-case


MacroPart = str | Macro


@quick_init
@dataclass(frozen=True, slots=True)
class MacroString:
    """A domain-spec or explanation string: literals and macros, in order."""

    text: str
    parts: tuple[MacroPart, ...]

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)


@quick_init
@dataclass(frozen=True, slots=True)
class Mechanism:
    qualifier: Qualifier
    kind: MechanismKind
    text: str  # the term as written, for reasons and headers
    domain: MacroString | None = None  # include/a/mx/ptr/exists target
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # ip4/ip6
    cidr4: int = 32  # a/mx dual CIDR lengths (RFC 7208 §5.6)
    cidr6: int = 128


@dataclass(frozen=True, slots=True)
class Modifier:
    name: str  # lower-case
    value: MacroString
    text: str


@quick_init
@dataclass(frozen=True, slots=True)
class Record:
    """A parsed `v=spf1` record."""

    text: str
    mechanisms: tuple[Mechanism, ...]
    modifiers: tuple[Modifier, ...] = field(default=())
    redirect: MacroString | None = None
    exp: MacroString | None = None

    @property
    def has_all(self) -> bool:
        return any(m.kind is MechanismKind.ALL for m in self.mechanisms)


VERSION = "v=spf1"

_MODIFIER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")
_CIDR_VALUE = re.compile(r"0|[1-9][0-9]*")  # RFC 7208 §5.6: no leading zeros
# RFC 7208 §7.1: toplabel = ( *alphanum ALPHA *alphanum )
#                         / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
_DOMAIN_END = re.compile(
    r"\.(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9\-]*[A-Za-z0-9])\.?\Z"
)
_DUAL_CIDR = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?\Z")


def is_spf_record(text: bytes) -> bool:
    """RFC 7208 §4.5: the record starts with "v=spf1" followed by a space or its end."""
    head = text[:7].lower()
    return head == b"v=spf1" or head == b"v=spf1 "


def parse_record(text: str) -> Record:
    """Parse a complete record; raise SPFSyntaxError naming the first bad term."""
    if not text.isascii():  # RFC 7208 §3.1 / §4.5: records are 7-bit ASCII
        raise SPFSyntaxError("record contains non-ASCII characters")
    if text[:6].lower() != VERSION or (len(text) > 6 and text[6] != " "):
        raise SPFSyntaxError("record does not start with v=spf1")
    mechanisms: list[Mechanism] = []
    modifiers: list[Modifier] = []
    redirect: MacroString | None = None
    exp: MacroString | None = None
    # RFC 7208 §4.5/§12: terms = *( 1*SP ( directive / modifier ) ) followed by *SP
    for term in text[6:].split(" "):
        if not term:
            continue
        if not term.isprintable():
            raise SPFSyntaxError(f"control character in term {term!r}")
        modifier = _parse_modifier(term)
        if modifier is None:
            mechanisms.append(_parse_mechanism(term))
            continue
        if modifier.name == "redirect":
            if redirect is not None:  # RFC 7208 §6: at most once
                raise SPFSyntaxError("redirect= appears more than once")
            redirect = modifier.value
        elif modifier.name == "exp":
            if exp is not None:
                raise SPFSyntaxError("exp= appears more than once")
            exp = modifier.value
        modifiers.append(modifier)
    return Record(text, tuple(mechanisms), tuple(modifiers), redirect, exp)


def _parse_modifier(term: str) -> Modifier | None:
    name_match = _MODIFIER_NAME.match(term)
    if name_match is None or term[name_match.end() : name_match.end() + 1] != "=":
        return None
    name = name_match.group().lower()
    raw = term[name_match.end() + 1 :]
    if name in ("redirect", "exp"):  # RFC 7208 §6.1, §6.2: the value is a domain-spec
        return Modifier(name, parse_domain_spec(raw, term), term)
    # RFC 7208 §6: unknown modifiers are ignored, but must still be valid macro-strings
    return Modifier(name, parse_macro_string(raw, term, allow_exp_letters=True), term)


_QUALIFIERS = {q.value: q for q in Qualifier}
_KINDS = {k.value: k for k in MechanismKind}
_NAME_END = re.compile(r"[:/]")


def _parse_mechanism(term: str) -> Mechanism:
    qualifier = _QUALIFIERS.get(term[0])
    body = term
    if qualifier is None:
        qualifier = Qualifier.PASS
    else:
        body = term[1:]
    found = _NAME_END.search(body)
    end = found.start() if found else len(body)
    name = body[:end].lower()
    rest = body[end:]
    kind = _KINDS.get(name)
    if kind is None:
        raise SPFSyntaxError(f"unknown mechanism {term!r}")

    if kind is MechanismKind.ALL:
        if rest:
            raise SPFSyntaxError(f"'all' takes no argument: {term!r}")
        return Mechanism(qualifier, kind, term)
    if kind in (MechanismKind.INCLUDE, MechanismKind.EXISTS):
        if not rest.startswith(":"):
            raise SPFSyntaxError(f"{name} needs ':domain': {term!r}")
        return Mechanism(qualifier, kind, term, domain=parse_domain_spec(rest[1:], term))
    if kind is MechanismKind.PTR:
        if not rest:
            return Mechanism(qualifier, kind, term)
        if not rest.startswith(":"):
            raise SPFSyntaxError(f"bad ptr mechanism {term!r}")
        return Mechanism(qualifier, kind, term, domain=parse_domain_spec(rest[1:], term))
    if kind in (MechanismKind.A, MechanismKind.MX):
        cidr = _DUAL_CIDR.search(rest)
        assert cidr is not None  # every group is optional, so it always matches
        spec = rest[: cidr.start()]
        cidr4 = _cidr_length(cidr.group(1), 32, term) if cidr.group(1) is not None else 32
        cidr6 = _cidr_length(cidr.group(2), 128, term) if cidr.group(2) is not None else 128
        domain = None
        if spec:
            if not spec.startswith(":"):
                raise SPFSyntaxError(f"bad {name} mechanism {term!r}")
            domain = parse_domain_spec(spec[1:], term)
        return Mechanism(qualifier, kind, term, domain=domain, cidr4=cidr4, cidr6=cidr6)
    # ip4 / ip6
    if not rest.startswith(":"):
        raise SPFSyntaxError(f"{name} needs ':address': {term!r}")
    address, slash, length = rest[1:].partition("/")
    maximum = 32 if kind is MechanismKind.IP4 else 128
    bits = _cidr_length(length, maximum, term) if slash else maximum
    # The C parser is strict (dotted quads without leading zeros, RFC 4291 §2.2 text forms, no
    # zone index: RFC 7208 §5.6) and several times faster than ipaddress on long records.
    family = socket.AF_INET if kind is MechanismKind.IP4 else socket.AF_INET6
    try:
        packed = int.from_bytes(socket.inet_pton(family, address), "big")
    except (OSError, ValueError):
        raise SPFSyntaxError(f"invalid address in {term!r}") from None
    host_bits = maximum - bits
    start = packed >> host_bits << host_bits  # host bits cleared, as a network has them
    network: ipaddress.IPv4Network | ipaddress.IPv6Network = (
        ipaddress.IPv4Network((start, bits))
        if kind is MechanismKind.IP4
        else ipaddress.IPv6Network((start, bits))
    )
    return Mechanism(qualifier, kind, term, network=network)


def _cidr_length(text: str, maximum: int, term: str) -> int:
    if not _CIDR_VALUE.fullmatch(text) or int(text) > maximum:
        raise SPFSyntaxError(f"invalid CIDR length in {term!r}")
    return int(text)


def parse_domain_spec(text: str, term: str) -> MacroString:
    """RFC 7208 §7.1: domain-spec = macro-string domain-end."""
    spec = parse_macro_string(text, term, allow_exp_letters=False)
    if not spec.parts:
        raise SPFSyntaxError(f"empty domain in {term!r}")
    last = spec.parts[-1]
    # domain-end = ( "." toplabel [ "." ] ) / macro-expand
    if isinstance(last, str) and not _DOMAIN_END.search(last):
        raise SPFSyntaxError(f"domain must end in a valid top label or a macro: {term!r}")
    return spec


def parse_macro_string(
    text: str, term: str, *, allow_exp_letters: bool, allow_space: bool = False
) -> MacroString:
    """Parse a macro-string (RFC 7208 §7.1); literal runs are merged into one str part."""
    parts: list[MacroPart] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char != "%":
            if not ("\x21" <= char <= "\x7e" or (allow_space and char == " ")):
                # macro-literal = %x21-24 / %x26-7E
                raise SPFSyntaxError(f"invalid character {char!r} in {term!r}")
            literal.append(char)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "%":
            literal.append("%")
            i += 2
        elif nxt == "_":
            literal.append(" ")
            i += 2
        elif nxt == "-":
            literal.append("%20")
            i += 2
        elif nxt == "{":
            close = text.find("}", i + 2)
            if close < 0:
                raise SPFSyntaxError(f"unterminated macro in {term!r}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_parse_macro(text[i + 2 : close], term, allow_exp_letters))
            i = close + 1
        else:
            raise SPFSyntaxError(f"'%' must be followed by '{{', '%', '_' or '-' in {term!r}")
    if literal:
        parts.append("".join(literal))
    return MacroString(text, tuple(parts))


def _parse_macro(body: str, term: str, allow_exp_letters: bool) -> Macro:
    if not body:
        raise SPFSyntaxError(f"empty macro in {term!r}")
    letter = body[0]
    lower = letter.lower()
    if lower not in MACRO_LETTERS:
        raise SPFSyntaxError(f"unknown macro letter {letter!r} in {term!r}")
    if lower in EXP_ONLY_LETTERS and not allow_exp_letters:
        raise SPFSyntaxError(f"macro %{{{letter}}} is only allowed in explanations: {term!r}")
    i = 1
    while i < len(body) and body[i] in "0123456789":
        i += 1
    digits_text = body[1:i]
    digits: int | None = None
    if digits_text:
        digits = int(digits_text)
        if digits == 0:  # RFC 7208 §7.1: if a DIGIT is specified, the value MUST be at least 1
            raise SPFSyntaxError(f"macro transformer must be at least 1 in {term!r}")
    reverse = False
    if i < len(body) and body[i] in "rR":
        reverse = True
        i += 1
    delimiters = body[i:]
    if any(d not in DELIMITERS for d in delimiters):
        raise SPFSyntaxError(f"invalid macro delimiter in {term!r}")
    return Macro(lower, digits, reverse, delimiters, letter.isupper())


def parse_explanation(text: str) -> MacroString:
    """RFC 7208 §6.2: explanation-string = *( macro-string / SP )."""
    return parse_macro_string(text, text, allow_exp_letters=True, allow_space=True)
