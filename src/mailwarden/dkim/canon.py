"""Canonicalization (RFC 6376 §3.4) and the hash inputs built from it, shared with ARC.

Everything works on whole byte strings with C-level operations (one regex substitution and
a few `replace` calls per body), never a Python loop per line: canonicalization is most of the
cost of verifying a signature. A test for a substring is `data.find(sub) >= 0`, not `sub in
data`: on CPython 3.11 `bytes.__contains__` first tries the operand as an integer, and the
TypeError it raises and clears costs twice the search of a header value.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any

from mailwarden.body import Body, SpooledBody
from mailwarden.message import HeaderField, Message

from .tags import strip_tag_value

__all__ = [
    "BodyHasher",
    "Canon",
    "StreamingBody",
    "body_hash",
    "canonicalize_body",
    "canonicalize_header",
    "header_hash_input",
    "parse_canonicalization",
]

_HEADER_WSP = re.compile(rb"[ \t]+")
_CRLF = b"\r\n"


class Canon(StrEnum):
    """The two canonicalization algorithms (RFC 6376 §3.4)."""

    SIMPLE = "simple"
    RELAXED = "relaxed"


_CANONICALIZATIONS = {
    **{f"{h}/{b}": (h, b) for h in Canon for b in Canon},
    **{f"{h}": (h, Canon.SIMPLE) for h in Canon},
}


def parse_canonicalization(text: str) -> tuple[Canon, Canon]:
    """c= value "header[/body]" (RFC 6376 §3.5: default simple/simple, body default simple)."""
    pair = _CANONICALIZATIONS.get(text.strip().lower())
    if pair is None:
        raise ValueError(f"unknown canonicalization {text!r}")
    return pair


def canonicalize_header(name: bytes, value: bytes, relaxed: bool, *, crlf: bool = True) -> bytes:
    """One header field canonicalized (RFC 6376 §3.4.1, §3.4.2).

    `name` and `value` as in `HeaderField` (value: everything after the colon). With `crlf`
    the result ends with CRLF, as every field but the signature's own does.
    """
    if relaxed:
        # §3.4.2: lowercase the name, unfold, WSP runs to one SP, no WSP at the value's ends
        if value.find(b"\n") >= 0:  # (find, not `in`: see the module's docstring)
            value = value.replace(b"\r\n", b"").replace(b"\n", b"")
        if value.find(b"\t") >= 0 or value.find(b"  ") >= 0:
            value = _HEADER_WSP.sub(b" ", value)
        value = value.strip(b" ")
        out = name.strip(b" \t").lower() + b":" + value
    else:
        out = name + b":" + value
    return out + _CRLF if crlf else out


def _field_simple(field: HeaderField) -> bytes:
    raw = field.raw
    if raw.endswith(_CRLF):
        return raw
    return raw.rstrip(b"\n") + _CRLF if raw.endswith(b"\n") else raw + _CRLF


def header_hash_input(
    message: Message,
    signed: Iterable[str],
    relaxed: bool,
    signature: HeaderField,
    *,
    strip_tag: bytes = b"b",
) -> bytes:
    """The data a DKIM-like signature signs (RFC 6376 §3.7, §5.4.2).

    The fields named in `signed` (h=), picked bottom-up, each canonicalized with CRLF, then the
    `signature` field itself with its `strip_tag` value emptied and no final CRLF. ARC uses the
    same input for ARC-Message-Signature and ARC-Seal.
    """
    parts: list[bytes] = []
    for field in message.select(signed, exclude=signature):
        if field is None:
            continue  # §5.4.2: a name with no (unused) instance contributes nothing
        if relaxed:  # canonicalize_header(..., True), inlined: this loop is hot
            value = field.value
            if value.find(b"\n") >= 0:  # (find, not `in`: see the module's docstring)
                value = value.replace(b"\r\n", b"").replace(b"\n", b"")
            if value.find(b"\t") >= 0 or value.find(b"  ") >= 0:
                value = _HEADER_WSP.sub(b" ", value)
            parts += (field.name.lower(), b":", value.strip(b" "), _CRLF)
        else:
            parts.append(_field_simple(field))
    value = strip_tag_value(signature.value, strip_tag)
    if relaxed:
        parts.append(canonicalize_header(signature.name, value, True, crlf=False))
    else:
        prefix = signature.raw[: signature.raw.index(b":") + 1]  # name as written, WSP kept
        parts.append(prefix + value)
    return b"".join(parts)


def _strip_trailing_crlf(body: bytes) -> bytes:
    end = len(body)
    while end >= 2 and body[end - 2 : end] == _CRLF:
        end -= 2
    return body[:end] if end != len(body) else body


def _collapse_spaces(data: bytes) -> bytes:
    """Runs of 2+ spaces as one space, except that a run at the very end is dropped (relaxed
    canonicalization removes it anyway). Split at each leftmost double space: the pieces after
    the first start with what remains of the run; lstrip that, drop pieces left empty (longer
    runs), and join with one space. All iteration stays in C.
    """
    parts = data.split(b"  ")
    if len(parts) == 1:
        return data
    rest = filter(None, map(bytes.lstrip, parts[1:], itertools.repeat(b" ")))
    return b" ".join([parts[0], *rest])


def _drop_space_before_crlf(data: bytes) -> bytes:
    """One SP before each CRLF removed (after `_collapse_spaces` there is at most one)."""
    return b"\r\n".join(data.split(b" \r\n"))


def canonicalize_body(body: bytes, relaxed: bool) -> bytes:
    """The body canonicalized (RFC 6376 §3.4.3 simple, §3.4.4 relaxed); CRLF line endings."""
    if relaxed:
        # §3.4.4 b: WSP runs to one SP (tabs to spaces, then runs of 2+ spaces to one)
        if body.find(b"\t") >= 0:
            body = body.replace(b"\t", b" ")
        body = _collapse_spaces(body)
        body = _drop_space_before_crlf(body)  # §3.4.4 a: no WSP at line ends
        if body.endswith(b" "):
            body = body[:-1]
        body = _strip_trailing_crlf(body)
        return body + _CRLF if body else b""  # empty body: empty (errata 3770)
    # §3.4.3: trailing empty lines removed; an empty body becomes one CRLF
    return _strip_trailing_crlf(body) + _CRLF


def body_hash(
    body: bytes, relaxed: bool, *, algorithm: str = "sha256", length: int | None = None
) -> bytes:
    """The digest of the canonicalized body, its first `length` bytes when l= is used."""
    canonical = canonicalize_body(body, relaxed)
    if length is not None:
        canonical = canonical[:length]
    return hashlib.new(algorithm, canonical).digest()


class StreamingBody:
    """Canonicalizes a body that arrives in pieces (RFC 6376 §3.4.3, §3.4.4), with the same
    result as `canonicalize_body` on the whole. Each complete-lines block goes through the
    same bulk operations; trailing empty lines are held back until more text follows."""

    def __init__(self, relaxed: bool) -> None:
        self.relaxed = relaxed
        self.pending = b""  # octets after the last CRLF seen
        self.held = 0  # empty lines (CRLFs) held back: they count only if text follows
        self.started = False  # some text was given out

    def _canon(self, block: bytes) -> bytes:
        if not self.relaxed:
            return block
        if block.find(b"\t") >= 0:
            block = block.replace(b"\t", b" ")
        return _drop_space_before_crlf(_collapse_spaces(block))

    def feed(self, data: bytes) -> bytes:
        data = self.pending + data
        end = data.rfind(_CRLF)
        if end < 0:
            self.pending = data
            return b""
        block, self.pending = data[: end + 2], data[end + 2 :]
        canonical = self._canon(block)
        text = _strip_trailing_crlf(canonical)
        ended = (len(canonical) - len(text)) // 2  # the last line's CRLF and empty lines
        if not text:
            self.held += ended
            return b""
        out = _CRLF * self.held + text
        self.held, self.started = ended, True
        return out

    def finish(self) -> bytes:
        tail = self._canon(self.pending)
        if self.relaxed and tail.endswith(b" "):
            tail = tail[:-1]
        self.pending = b""
        if tail:
            out = _CRLF * self.held + tail + _CRLF
        elif self.started:
            out = _CRLF  # the last text line's own line end; trailing empty lines dropped
        else:
            out = b"" if self.relaxed else _CRLF  # errata 3770 / §3.4.3
        self.held, self.started = 0, True
        return out


class BodyHasher:
    """Body hashes of one message, each computed once per (canon, hash, length).

    One instance serves every signature of a message (and ARC's), so two signatures that agree
    on canonicalization share the work. `length(relaxed)` is the canonical body's size. A
    spooled body (mailwarden.body.SpooledBody) is streamed, never held whole in memory.
    """

    def __init__(self, body: Body) -> None:
        self.body = body
        self._canonical: dict[bool, bytes] = {}
        self._lengths: dict[bool, int] = {}
        self._digests: dict[tuple[bool, str, int | None], bytes] = {}

    def canonical(self, relaxed: bool) -> bytes:
        canonical = self._canonical.get(relaxed)
        if canonical is None:
            body = self.body
            whole = body.read() if isinstance(body, SpooledBody) else body
            canonical = self._canonical[relaxed] = canonicalize_body(whole, relaxed)
        return canonical

    def length(self, relaxed: bool) -> int:
        if isinstance(self.body, SpooledBody):
            if relaxed not in self._lengths:
                self.digest(relaxed)
            return self._lengths[relaxed]
        return len(self.canonical(relaxed))

    def digest(self, relaxed: bool, algorithm: str = "sha256", length: int | None = None) -> bytes:
        key = (relaxed, algorithm, length)
        digest = self._digests.get(key)
        if digest is None:
            hasher = hashlib.sha256() if algorithm == "sha256" else hashlib.sha1()
            if isinstance(self.body, SpooledBody):
                self._stream(hasher, relaxed, length)
            else:
                canonical = self.canonical(relaxed)
                hasher.update(canonical if length is None else canonical[:length])
            digest = self._digests[key] = hasher.digest()
        return digest

    def _stream(self, hasher: Any, relaxed: bool, length: int | None) -> None:
        assert isinstance(self.body, SpooledBody)
        total = 0
        for piece in _canonical_pieces(StreamingBody(relaxed), self.body.chunks()):
            if length is not None and total + len(piece) > length:
                piece = piece[: max(0, length - total)]
            total += len(piece)
            hasher.update(piece)
        if length is None:
            self._lengths[relaxed] = total


def _canonical_pieces(stream: StreamingBody, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The canonical body, piece by piece (nothing held but the current piece)."""
    for piece in pieces:
        out = stream.feed(piece)
        if out:
            yield out
    yield stream.finish()
