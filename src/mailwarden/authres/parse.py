"""Parsing Authentication-Results (RFC 8601 §2.2), comments included, and removing forged ones.

`parse_authentication_results(value)` reads a field body; every malformed input raises
`ParseError` (a ValueError) saying what was expected where. Comments (RFC 5322 CFWS, nested)
are kept: those around the authserv-id, version or ``none`` on the header, those inside a
methodspec or reasonspec on the resinfo, those inside or after a propspec on the property.

Leniency, in both modes: a pvalue token may contain "/" (base64 ``header.b`` values written
unquoted are common). In the default (lenient) mode a property without a ptype
(``version=TLSv1.2``), which RFC 8601 does not allow, is dropped with a warning, and a trailing
";" is accepted; `strict=True` raises ParseError for both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .model import AuthenticationResults, Property, ResInfo

__all__ = [
    "ParseError",
    "Parsed",
    "authserv_id_of",
    "parse_arc_authentication_results",
    "parse_authentication_results",
    "parse_field",
    "parse_with_warnings",
    "remove_forged",
]

MAX_LENGTH = 64 * 1024

_KEYWORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
# a token, plus "/" (lenient) and the other local-part characters; UTF-8 as RFC 8616 allows
_PVALUE_WORD = re.compile(r"[!#$%&'*+\-./0-9=?A-Z^_`a-z{|}~\u0080-\U0010ffff]+")
_DOMAIN = re.compile(r"[A-Za-z0-9_\-.\u0080-\U0010ffff]+")
_DIGITS = re.compile(r"[0-9]+")
_ASCII_DIGITS = frozenset("0123456789")
_FIELD = re.compile(r"\s*(arc-)?authentication-results\s*:", re.IGNORECASE)
_WSP = " \t\r\n"


class ParseError(ValueError):
    """The value does not follow the RFC 8601 grammar; says what was expected where."""

    def __init__(self, message: str, text: str = "", position: int = 0) -> None:
        self.position = position
        where = f" at offset {position}: {text[position : position + 30]!r}" if text else ""
        super().__init__(message + where)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parse outcome with the warnings of lenient mode (what was dropped, and why)."""

    value: AuthenticationResults
    warnings: tuple[str, ...] = ()


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.sink: list[str] = []

    def error(self, message: str) -> ParseError:
        return ParseError(message, self.text, self.i)

    def at_end(self) -> bool:
        return self.i >= len(self.text)

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def cfws(self) -> None:
        """Skip folding white space and comments; comments go to the current sink."""
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c in _WSP:
                self.i += 1
            elif c == "(":
                self.sink.append(self.comment())
            else:
                break

    def comment(self) -> str:
        start = self.i
        depth = 0
        chars: list[str] = []
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c == "\\":
                if self.i + 1 >= len(text):
                    break
                chars.append(text[self.i + 1])
                self.i += 2
                continue
            self.i += 1
            if c == "(":
                depth += 1
                if depth == 1:
                    continue
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return "".join(chars)
            if c not in "\r\n":
                chars.append(c)
        self.i = start
        raise self.error("unterminated comment")

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.i)
        if found is None:
            raise self.error(f"expected {what}")
        self.i = found.end()
        return found.group()

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.i += 1

    def quoted(self) -> str:
        start = self.i
        self.i += 1
        chars: list[str] = []
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c == "\\" and self.i + 1 < len(text):
                chars.append(text[self.i + 1])
                self.i += 2
                continue
            self.i += 1
            if c == '"':
                return "".join(chars)
            if c not in "\r\n":
                chars.append(c)
        self.i = start
        raise self.error("unterminated quoted-string")

    def value(self, what: str) -> str:
        """RFC 2045 value: token / quoted-string."""
        if self.peek() == '"':
            return self.quoted()
        return self.match(_TOKEN, what)

    def domain(self) -> str:
        name = self.match(_DOMAIN, "a domain name after '@'")
        if name.startswith(".") or name.endswith(".") or ".." in name:
            self.i -= len(name)
            raise self.error("malformed domain name")
        return name

    def pvalue(self) -> str:
        """RFC 8601 pvalue: value / [[local-part] "@"] domain-name."""
        if self.peek() == '"':
            local = self.quoted()
            if self.peek() == "@":
                self.i += 1
                return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"@' + self.domain()
            return local
        if self.peek() == "@":
            self.i += 1
            return "@" + self.domain()
        start = self.i
        word = self.match(_PVALUE_WORD, "a property value")
        if self.peek() == "@":
            self.i += 1
            return word + "@" + self.domain()
        bad = next((c for c in word if c in "=?"), None)
        if bad is not None:
            self.i = start + word.index(bad)
            raise self.error(f"{bad!r} is not allowed in an unquoted value")
        return word


def _parse(text: str, strict: bool) -> Parsed:
    if len(text) > MAX_LENGTH:
        raise ParseError("Authentication-Results value too long")
    sc = _Scanner(text)
    warnings: list[str] = []
    header_comments: list[str] = []
    sc.sink = header_comments
    sc.cfws()
    if sc.at_end():
        raise sc.error("expected an authserv-id")
    authserv_id = sc.value("an authserv-id")
    sc.cfws()
    version: int | None = None
    if sc.peek() in _ASCII_DIGITS:
        version = int(sc.match(_DIGITS, "a version"))
        sc.cfws()
    if sc.at_end():
        raise sc.error("expected ';' after the authserv-id")
    results: list[ResInfo] = []
    while not sc.at_end():
        sc.expect(";")
        sc.cfws()
        if sc.at_end():
            if strict or not results:
                raise sc.error("expected a result after ';'")
            warnings.append("trailing ';' ignored")
            break
        if not results and sc.text[sc.i : sc.i + 4].lower() == "none":
            mark, known = sc.i, len(header_comments)
            sc.i += 4
            sc.cfws()
            if sc.at_end():  # no-result: authserv-id [version] ; none
                return Parsed(
                    AuthenticationResults(authserv_id, (), version, tuple(header_comments)),
                    tuple(warnings),
                )
            sc.i = mark
            del header_comments[known:]
        results.append(_resinfo(sc, strict, warnings))
    return Parsed(
        AuthenticationResults(authserv_id, tuple(results), version, tuple(header_comments)),
        tuple(warnings),
    )


def _resinfo(sc: _Scanner, strict: bool, warnings: list[str]) -> ResInfo:
    comments: list[str] = []
    sc.sink = comments
    method = sc.match(_KEYWORD, "a method name")
    sc.cfws()
    method_version: int | None = None
    if sc.peek() == "/":
        sc.i += 1
        sc.cfws()
        method_version = int(sc.match(_DIGITS, "a method version"))
        sc.cfws()
    sc.expect("=")
    sc.cfws()
    result = sc.match(_KEYWORD, "a result keyword")
    reason: str | None = None
    props: list[tuple[str, str, str, list[str]]] = []
    while True:
        sc.cfws()
        if sc.at_end() or sc.peek() == ";":
            break
        if sc.i > 0 and sc.text[sc.i - 1] not in _WSP + ")":
            raise sc.error("expected white space or ';' after a value")
        name = sc.match(_KEYWORD, "a reason or property")
        pending: list[str] = []
        sc.sink = pending
        sc.cfws()
        if sc.peek() == ".":
            sc.i += 1
            sc.cfws()
            prop = sc.match(_KEYWORD, "a property name")
            sc.cfws()
            sc.expect("=")
            sc.cfws()
            value = sc.pvalue()
            props.append((name, prop, value, pending))  # later comments join this property
        elif sc.peek() == "=" and name.lower() == "reason" and reason is None and not props:
            sc.i += 1
            sc.cfws()
            reason = sc.value("a reason value")
            comments.extend(pending)
            sc.sink = comments
        elif sc.peek() == "=":
            if strict:
                raise sc.error(f"property {name!r} has no ptype (RFC 8601 §2.2 propspec)")
            sc.i += 1
            sc.cfws()
            ignored = sc.pvalue()
            warnings.append(f"{method}: property without ptype {name}={ignored} dropped")
            sc.sink = props[-1][3] if props else comments
        else:
            raise sc.error("expected '.' or '='")
    return ResInfo(
        method=method,
        result=result,
        reason=reason,
        properties=tuple(Property(t, n, v, tuple(c)) for t, n, v, c in props),
        comments=tuple(comments),
        version=method_version,
    )


def parse_authentication_results(value: str, *, strict: bool = False) -> AuthenticationResults:
    """Parse a field body (without the field name); ParseError when malformed."""
    return _parse(value, strict).value


def parse_with_warnings(value: str, *, strict: bool = False) -> Parsed:
    """Like `parse_authentication_results`, also saying what lenient mode dropped."""
    return _parse(value, strict)


def parse_field(line: str, *, strict: bool = False) -> AuthenticationResults:
    """Parse a whole ``Authentication-Results: ...`` field (name matched without case)."""
    match = _FIELD.match(line)
    if match is None or match.group(1):
        raise ParseError("not an Authentication-Results field")
    return _parse(line[match.end() :], strict).value


_INSTANCE = re.compile(r"[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]+)[ \t\r\n]*;", re.IGNORECASE)


def parse_arc_authentication_results(
    value: str, *, strict: bool = False
) -> tuple[int, AuthenticationResults]:
    """An ARC-Authentication-Results body (RFC 8617 §4.1.1): ``i=N; <A-R payload>``."""
    match = _INSTANCE.match(value)
    if match is None:
        raise ParseError("ARC-Authentication-Results must start with i=<instance>;")
    return int(match.group(1)), _parse(value[match.end() :], strict).value


_LOOSE_ID = re.compile(r'[\s]*(?:\([^()]*\)[\s]*)*"?([^\s;"()]+)')


def authserv_id_of(value: str) -> str | None:
    """The authserv-id an Authentication-Results body claims, read leniently."""
    sc = _Scanner(value)
    try:
        sc.cfws()
        return sc.value("an authserv-id")
    except ParseError:
        loose = _LOOSE_ID.match(value)
        return loose.group(1) if loose else None


def remove_forged(
    headers: Iterable[tuple[str, str]], authserv_id: str | Iterable[str]
) -> list[tuple[str, str]]:
    """The header fields without the Authentication-Results and ARC-Authentication-Results
    that claim one of our authserv-ids (RFC 8601 §5: ours are added only after that)."""
    ours = (
        {authserv_id.lower()} if isinstance(authserv_id, str) else {a.lower() for a in authserv_id}
    )
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lname = name.strip().lower()
        body = value
        if lname == "arc-authentication-results":
            match = _INSTANCE.match(value)
            body = value[match.end() :] if match else value
        elif lname != "authentication-results":
            kept.append((name, value))
            continue
        claimed = authserv_id_of(body)
        if claimed is not None and claimed.lower() in ours:
            continue  # a forged (or stale) result in our name: drop it
        kept.append((name, value))
    return kept
