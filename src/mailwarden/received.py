"""Received header fields (RFC 5321 §4.4, RFC 5322 §3.6.7) read as hops of a message's path.

`parse_received(value)` reads one field body, tolerant of what real servers write (Postfix,
Exim, Sendmail, qmail, Gmail, Microsoft): the clauses ``from``, ``by``, ``via``, ``with``,
``id`` and ``for`` in any order, the comments MTAs attach to them (reverse name and address,
HELO name, TLS version and cipher, software), and the date after the last ``;``. It returns a
`ReceivedHop`; what it could not read is listed in `problems` (a partial hop). Only a value
with nothing recognisable at all raises `ParseError`. It never raises anything else.

`ReceivedHop.format()` writes a hop back as a canonical Received value, so parse -> format ->
parse is stable (the property tests rely on it).
"""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
import re
from dataclasses import dataclass, field

from mailwarden.dns import IPAddress

__all__ = ["ParseError", "ReceivedHop", "TLSInfo", "parse_received"]

MAX_VALUE_CHARS = 8192  # a Received value longer than this is cut (hostile input)
CLAUSES = ("from", "by", "via", "with", "id", "for")

_IP_LITERAL = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\](?::\d+)?", re.IGNORECASE)
_IPV4_PORT = re.compile(r"([0-9.]+):\d+")
_HELO_EQ = re.compile(r"\bhelo=([^\s()\]]+)", re.IGNORECASE)
_HELO_WORD = re.compile(r"^(?:HELO|EHLO)\s+(\S+)$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")
# TLS as written by Postfix ("using TLSv1.3 with cipher X"), Sendmail ("version=TLSv1.3
# cipher=X"), Microsoft ("version=TLS1_2, cipher=X"), Exim ("(TLS1.3) tls X", or
# "(TLS1.2:ECDHE-RSA-AES256-GCM-SHA384:256)").
_TLS_VERSION = re.compile(
    r"\b(TLSv1(?:\.[0-3])?|TLS1(?:[._][0-3])?|SSLv3|TLS\s?1\.[0-3])\b", re.IGNORECASE
)
_CIPHER = re.compile(
    r"(?:with cipher\s+|cipher=|\btls\s+)([A-Za-z0-9_-]{6,})|"
    r"TLSv?1(?:\.[0-3])?:([A-Za-z0-9_-]{6,}):\d+",
    re.IGNORECASE,
)
_TLS_PROTOCOLS = frozenset({"esmtps", "esmtpsa", "utf8smtps", "utf8smtpsa", "lmtps", "smtps"})
_TLS_WORDS = re.compile(r"Transport Security|\bTLS\b|\bSSL\b", re.IGNORECASE)


class ParseError(ValueError):
    """The value holds nothing a Received field has: no clause and no date."""


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """TLS as the receiving server stated it (`version`/`cipher` None when not stated)."""

    version: str | None = None
    cipher: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedHop:
    """One Received field, read. Empty strings and None mean "not stated"."""

    from_name: str = ""  # the from clause: usually the HELO/EHLO name the client gave
    helo: str = ""  # the HELO name (from "helo=" or "HELO x" comments, else the from clause)
    reverse_name: str = ""  # the client's reverse DNS name as the server found it
    ip: IPAddress | None = None  # the client's address
    by: str = ""  # the receiving host
    by_comment: str = ""  # what follows by: software and version, usually
    via: str = ""
    protocol: str = ""  # the with clause: SMTP, ESMTP, ESMTPS, HTTP, LMTP ...
    tls: TLSInfo | None = None  # None: no sign of TLS
    id: str = ""
    for_address: str = ""
    date: datetime.datetime | None = None
    date_text: str = ""
    comments: tuple[str, ...] = ()  # every comment, in order
    problems: tuple[str, ...] = ()  # what could not be read (a partial hop)
    raw: str = field(default="", compare=False)

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    @property
    def timestamp(self) -> float | None:
        return self.date.timestamp() if self.date is not None else None

    def format(self) -> str:
        """A canonical Received value for this hop (one line; parses back to the same hop)."""
        parts: list[str] = []
        if self.from_name:
            parts.append(f"from {self.from_name}")
            inner = []
            if self.reverse_name or self.ip is not None:
                name = self.reverse_name or "unknown"
                inner.append(f"{name} [{self.ip}]" if self.ip is not None else name)
            if self.helo and self.helo != self.from_name:
                inner.append(f"helo={self.helo}")
            if inner:
                parts.append("(" + " ".join(inner) + ")")
        if self.by:
            parts.append(f"by {self.by}")
            if self.by_comment:
                parts.append(f"({self.by_comment})")
        if self.via:
            parts.append(f"via {self.via}")
        if self.protocol:
            parts.append(f"with {self.protocol}")
            if self.tls is not None and (self.tls.version or self.tls.cipher):
                tls = []
                if self.tls.version:
                    tls.append(f"version={self.tls.version}")
                if self.tls.cipher:
                    tls.append(f"cipher={self.tls.cipher}")
                parts.append("(" + " ".join(tls) + ")")
        if self.id:
            parts.append(f"id {self.id}")
        if self.for_address:
            parts.append(f"for <{self.for_address}>")
        text = " ".join(parts)
        if self.date is not None:
            text += "; " + email.utils.format_datetime(self.date)
        return text


# -- tokens ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    kind: str  # "word", "comment", "angle"
    text: str


def _tokenize(text: str) -> tuple[list[_Token], list[str]]:
    """Words, comments (nested, with quoted-pairs) and <angle addresses>; never raises."""
    tokens: list[_Token] = []
    problems: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t\r\n":
            i += 1
        elif char == "(":
            depth, j, out = 1, i + 1, []
            while j < n and depth:
                c = text[j]
                if c == "\\" and j + 1 < n:
                    out.append(text[j + 1])
                    j += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if not depth:
                        break
                out.append(c)
                j += 1
            if depth:
                problems.append("unclosed comment")
            tokens.append(_Token("comment", " ".join("".join(out).split())))
            i = j + 1
        elif char == "<":
            end = text.find(">", i)
            if end < 0:
                problems.append("unclosed <address>")
                end = n
            tokens.append(_Token("angle", text[i + 1 : end].strip()))
            i = end + 1
        elif char == ")":
            problems.append("unbalanced ')'")
            i += 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n()<":
                j += 1
            tokens.append(_Token("word", text[i:j]))
            i = j
    return tokens, problems


@dataclass(slots=True)
class _Clause:
    name: str
    value: str = ""
    extra: list[str] = field(default_factory=list)  # further words before the next clause
    comments: list[str] = field(default_factory=list)


def _clauses(tokens: list[_Token]) -> tuple[list[_Clause], list[str]]:
    clauses: list[_Clause] = []
    leading: list[str] = []
    current: _Clause | None = None
    for token in tokens:
        if token.kind == "comment":
            if current is None:
                leading.append(token.text)
            else:
                current.comments.append(token.text)
            continue
        word = token.text
        if token.kind == "word" and word.lower() in CLAUSES and (current is None or current.value):
            current = _Clause(word.lower())
            clauses.append(current)
        elif current is None:
            leading.append(word)
        elif not current.value:
            current.value = word
        else:
            current.extra.append(word)
    return clauses, leading


# -- reading the parts -------------------------------------------------------------------------


def _ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _bare_ip(word: str) -> IPAddress | None:
    """An address written without brackets, maybe with IPv6: before it or a :port after."""
    word = word.strip("[]")
    if word[:5].lower() == "ipv6:":
        word = word[5:]
    port = _IPV4_PORT.fullmatch(word)
    return _ip(port.group(1) if port else word)


def _name(text: str) -> str:
    text = text.strip()
    return text.rstrip(".").lower() if _NAME.fullmatch(text) else ""


def _from_details(clause: _Clause) -> tuple[str, str, str, IPAddress | None]:
    """(from name, HELO, reverse name, address) from the from clause and its comments."""
    value = clause.value
    from_name = value
    helo = ""
    reverse = ""
    ip: IPAddress | None = None
    literal = _IP_LITERAL.fullmatch(value)
    if literal:  # Exim: from [192.0.2.1] (helo=...)
        ip = _ip(literal.group(1))
    for text in [*clause.comments, " ".join(clause.extra)]:
        helo_eq = _HELO_EQ.search(text)
        if helo_eq and not helo:
            helo = helo_eq.group(1)
        helo_word = _HELO_WORD.match(text)
        if helo_word and not helo:  # qmail: from rev.name (HELO helo.name) (192.0.2.1)
            helo = helo_word.group(1)
            if value.lower() != "unknown":
                reverse = reverse or _name(value)
        found = _IP_LITERAL.search(text)
        if found and ip is None:
            ip = _ip(found.group(1))
            before = text[: found.start()].split()
            if before and not reverse:
                reverse = "" if before[-1].lower() == "unknown" else _name(before[-1])
        elif ip is None and text.split():
            ip = _bare_ip(text.split()[0])  # Microsoft / qmail: (2603:10a6:208:12::34)
    if not helo and not literal:
        helo = from_name
    return from_name, helo, reverse, ip


def _tls(protocol: str, texts: list[str]) -> TLSInfo | None:
    joined = " ".join(texts)
    version = _TLS_VERSION.search(joined)
    cipher = _CIPHER.search(joined)
    cipher_text = None
    if cipher:
        cipher_text = cipher.group(1) or cipher.group(2)
    if version or cipher_text:
        return TLSInfo(version.group(1).replace(" ", "") if version else None, cipher_text)
    if protocol.lower() in _TLS_PROTOCOLS or _TLS_WORDS.search(joined):
        return TLSInfo()  # RFC 3848: ESMTPS means TLS, the version is not stated
    return None


def _date(text: str) -> tuple[datetime.datetime | None, str | None]:
    text = " ".join(text.split())
    if not text:
        return None, "no date"
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, f"unreadable date {text[:60]!r}"
    if parsed.tzinfo is None:  # RFC 5322 -0000: UTC, origin unknown
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed, None


def parse_received(value: str | bytes) -> ReceivedHop:
    """Read one Received field body (without the field name); see the module docstring."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value[:MAX_VALUE_CHARS]
    raw = " ".join(text.split())
    tokens_part, semicolon, date_part = text.rpartition(";")
    if not semicolon:
        tokens_part, date_part = text, ""
    tokens, problems = _tokenize(tokens_part)
    clauses, leading = _clauses(tokens)
    date, date_problem = _date(date_part)
    if not clauses and date is None:
        raise ParseError("not a Received field: no from/by/with clause and no date")
    if date_problem:
        problems.append(date_problem)
    if leading:
        problems.append(f"unrecognised text before the first clause: {' '.join(leading)[:60]!r}")
    seen: dict[str, _Clause] = {}
    for clause in clauses:
        if clause.name in seen:
            problems.append(f"{clause.name} clause given twice (the first is used)")
            continue
        if not clause.value:
            problems.append(f"{clause.name} clause without a value")
        seen[clause.name] = clause
    if "by" not in seen:
        problems.append("no by clause")
    from_name = helo = reverse = ""
    ip: IPAddress | None = None
    if "from" in seen:
        from_name, helo, reverse, ip = _from_details(seen["from"])
    by = seen.get("by")
    with_clause = seen.get("with")
    protocol = ""
    if with_clause is not None:  # Microsoft: "with Microsoft SMTP Server"; Exim: "esmtps tls X"
        words = [with_clause.value]
        for word in with_clause.extra:
            if word.lower() == "tls":
                break
            words.append(word)
        protocol = " ".join(w for w in words if w)
    tls_texts: list[str] = []
    for clause in clauses:
        tls_texts.extend(clause.comments)
    if with_clause is not None:
        tls_texts.append(" ".join(with_clause.extra))
    for_clause = seen.get("for")
    for_address = ""
    if for_clause is not None:
        for_address = for_clause.value.strip("<>")
    id_clause = seen.get("id")
    return ReceivedHop(
        from_name=from_name.rstrip(".").lower() if _NAME.fullmatch(from_name) else from_name,
        helo=helo.rstrip(".").lower() if _NAME.fullmatch(helo) else helo,
        reverse_name=reverse,
        ip=ip,
        by=(_name(by.value) or by.value) if by else "",
        by_comment=" ".join(by.comments) if by else "",
        via=seen["via"].value if "via" in seen else "",
        protocol=protocol,
        tls=_tls(protocol, tls_texts),
        id=id_clause.value if id_clause else "",
        for_address=for_address,
        date=date,
        date_text=" ".join(date_part.split()),
        comments=tuple(c for t in tokens if t.kind == "comment" for c in [t.text]),
        problems=tuple(problems),
        raw=raw,
    )
