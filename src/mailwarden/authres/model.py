"""Authentication-Results values (RFC 8601 §2.2) as data, and their canonical text.

`AuthenticationResults.format_value()` writes the field body on one line; `format_field()`
writes the whole field folded at whitespace between elements (RFC 5322 §2.2.3). Values are
written as tokens where the grammar allows and as quoted-strings otherwise, so parsing the
output gives back the same object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailwarden.frozen import quick_init

__all__ = [
    "AuthenticationResults",
    "Property",
    "ResInfo",
    "format_pvalue",
    "format_value",
]

FIELD_NAME = "Authentication-Results"

# RFC 2045 token: any CHAR but SPACE, CTLs and tspecials ()<>@,;:\"/[]?=
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*"
)
_KEYWORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")  # RFC 5321 Ldh-str
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_text(text: str, what: str) -> None:
    if _CTL.search(text):
        raise ValueError(f"{what} {text!r} contains control characters")


def format_value(text: str) -> str:
    """RFC 2045 value: a token as it is, anything else as a quoted-string."""
    _check_text(text, "value")
    return text if _TOKEN.fullmatch(text) else _quote(text)


def format_pvalue(text: str) -> str:
    """RFC 8601 pvalue: a token, an [local-part] "@" domain-name, or a quoted-string."""
    _check_text(text, "value")
    if _TOKEN.fullmatch(text):
        return text
    local, at, domain = text.rpartition("@")
    if at and _DOMAIN.fullmatch(domain) and (not local or _DOT_ATOM.fullmatch(local)):
        return text
    return _quote(text)


def _comment(text: str) -> str:
    _check_text(text, "comment")
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _keyword(text: str, what: str) -> str:
    if not _KEYWORD.fullmatch(text):
        raise ValueError(f"{what} {text!r} is not a keyword (letters, digits, hyphens)")
    return text


@quick_init
@dataclass(frozen=True, slots=True)
class Property:
    """One propspec: ``ptype.name=value`` (e.g. smtp.mailfrom, header.d, policy.dmarc)."""

    ptype: str
    name: str
    value: str
    comments: tuple[str, ...] = ()

    def format(self) -> str:
        text = f"{_keyword(self.ptype, 'ptype')}.{_keyword(self.name, 'property')}="
        text += format_pvalue(self.value)
        for comment in self.comments:
            text += " " + _comment(comment)
        return text


@quick_init
@dataclass(frozen=True, slots=True)
class ResInfo:
    """One resinfo: ``method[/version]=result [(comment)] [reason=...] [props]``."""

    method: str
    result: str
    reason: str | None = None
    properties: tuple[Property, ...] = ()
    comments: tuple[str, ...] = ()
    version: int | None = None

    def get(self, ptype: str, name: str) -> str | None:
        """The value of the first property ptype.name (names compare without case)."""
        for prop in self.properties:
            if prop.ptype.lower() == ptype.lower() and prop.name.lower() == name.lower():
                return prop.value
        return None

    def format_parts(self) -> list[str]:
        """The space-separated pieces of this resinfo (folding may happen between them)."""
        method = _keyword(self.method, "method")
        if self.version is not None:
            method += f"/{self.version}"
        parts = [f"{method}={_keyword(self.result, 'result')}"]
        parts.extend(_comment(c) for c in self.comments)
        if self.reason is not None:
            _check_text(self.reason, "reason")
            parts.append("reason=" + _quote(self.reason))
        parts.extend(p.format() for p in self.properties)
        return parts

    def format(self) -> str:
        return " ".join(self.format_parts())


@quick_init
@dataclass(frozen=True, slots=True)
class AuthenticationResults:
    """A whole Authentication-Results value; no `results` means the ``none`` form."""

    authserv_id: str
    results: tuple[ResInfo, ...] = ()
    version: int | None = None
    comments: tuple[str, ...] = ()  # comments around the authserv-id, version or "none"

    def by_method(self, method: str) -> list[ResInfo]:
        return [r for r in self.results if r.method.lower() == method.lower()]

    def _segments(self) -> list[list[str]]:
        head = [format_value(self.authserv_id)]
        if self.version is not None:
            head.append(str(self.version))
        if not self.results:
            return [head, ["none", *(_comment(c) for c in self.comments)]]
        head.extend(_comment(c) for c in self.comments)
        return [head, *(r.format_parts() for r in self.results)]

    def format_value(self) -> str:
        """The field body on one line: ``authserv-id; method=result ...; ...``."""
        return "; ".join(" ".join(segment) for segment in self._segments())

    def format_field(self, *, width: int = 78, linesep: str = "\r\n") -> str:
        """``Authentication-Results: ...`` folded before `width` columns where it can be."""
        lines: list[str] = []
        line = f"{FIELD_NAME}:"
        in_line = 0  # pieces on the current line (the field name is not one)
        segments = self._segments()
        for index, segment in enumerate(segments):
            for position, part in enumerate(segment):
                last = position == len(segment) - 1 and index < len(segments) - 1
                piece = part + (";" if last else "")
                if in_line and len(line) + 1 + len(piece) > width:
                    lines.append(line)
                    line, in_line = "\t" + piece, 1
                else:
                    line, in_line = line + " " + piece, in_line + 1
        lines.append(line)
        return linesep.join(lines)
