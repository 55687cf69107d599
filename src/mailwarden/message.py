"""The message model every check shares: header fields and body, split without losing a byte.

DKIM canonicalization needs the exact bytes, so a `Message` keeps them: joining the fields'
`raw`, the `separator` and the `body` gives back the input. Header access is by name,
case-insensitive, every occurrence in order; `select` applies the bottom-up rule of
RFC 6376 §5.4.2.

Inside the gateway the message is the on-wire form (CRLF line endings). Files on disk often use
bare LF: `read_message` / `Message.from_file` convert them to CRLF first, as MTAs do.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mailwarden.body import Body, SpooledBody
from mailwarden.body import chunks as body_chunks

__all__ = [
    "DEFAULT_LIMITS",
    "FOLD_WIDTH",
    "HeaderField",
    "Message",
    "MessageError",
    "MessageLimits",
    "fold_field",
    "read_message",
    "to_crlf",
]

FOLD_WIDTH = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters

_UNFOLD = re.compile(rb"\r?\n(?=[ \t])")
# One field: name (RFC 5322 ftext), optional WSP (obsolete syntax), colon, the value with its
# folded continuation lines, and the line ending (absent at the very end of the input).
_FIELD = re.compile(rb"(([\x21-\x39\x3b-\x7e]+)[ \t]*:((?:[^\n]*\n[ \t])*[^\n]*)(?:\n|\Z))")
# A line that is not a field, with the continuation lines after it (lenient reading).
_JUNK = re.compile(rb"[^\n]*(?:\n[ \t][^\n]*)*(?:\n|\Z)")


class MessageError(ValueError):
    """The input cannot be read as a message (malformed header section, or over a limit)."""


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """Bounds on the header section, so hostile input cannot make us work without end."""

    max_header_bytes: int = 1024 * 1024
    max_fields: int = 1000


DEFAULT_LIMITS = MessageLimits()


def _first(item: tuple[bytes, ...]) -> bytes:
    return item[0]


class HeaderField(NamedTuple):
    """One header field exactly as received.

    `name` is the field name as written (any WSP before the colon dropped); `value` is
    everything after the colon up to, not including, the final line ending (folding kept);
    `raw` is the whole field with its line ending(s); `lname` the name in lower case.
    """

    name: bytes
    value: bytes
    raw: bytes
    lname: str

    @classmethod
    def make(cls, name: bytes, value: bytes, raw: bytes | None = None) -> HeaderField:
        """A field from its parts (`raw` defaults to name:value CRLF)."""
        if raw is None:
            raw = name + b":" + value + b"\r\n"
        return cls(name, value, raw, name.decode("ascii", "replace").lower())

    def unfolded(self) -> bytes:
        """The value with folding line breaks removed (RFC 5322 §2.2.3), outer WSP stripped."""
        return _UNFOLD.sub(b"", self.value).strip(b" \t")

    def text(self) -> str:
        """The unfolded value as text (UTF-8 per RFC 6532, undecodable bytes replaced)."""
        return self.unfolded().decode("utf-8", "replace")


# tuple.__new__ at C speed (HeaderField(...) goes through a Python-level __new__)
_new_field = functools.partial(tuple.__new__, HeaderField)


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed message: header fields in order, the empty separator line, and the body."""

    fields: tuple[HeaderField, ...]
    separator: bytes  # the empty line ending the header section (b"" when there is none)
    body: Body  # bytes, or a SpooledBody for a large message (read it with body.chunks)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, limits: MessageLimits = DEFAULT_LIMITS, strict: bool = True
    ) -> Message:
        """Split `data` as it is (no line-ending conversion); MessageError when malformed.

        `strict` (the default) refuses a header section that parsers would read differently:
        a line that is not a field (no colon, or a continuation line first) and a NUL
        character. Lenient, such lines are kept as fields with an empty name (`lname` ""),
        relayed as they came but never read as a field of any name.
        """
        fields, separator, body = _split(data, limits, strict)
        return cls(fields, separator, body)

    @classmethod
    def from_file(cls, path: str | Path, *, limits: MessageLimits = DEFAULT_LIMITS) -> Message:
        """Read a message file, treating bare LF line endings as CRLF."""
        return read_message(Path(path).read_bytes(), limits=limits)

    @property
    def raw(self) -> bytes:
        """The message bytes, exactly as parsed (a spooled body is read whole: prefer
        `header_section` and `chunks()` for large messages)."""
        body = self.body.read() if isinstance(self.body, SpooledBody) else self.body
        return self.header_section + body

    @property
    def header_section(self) -> bytes:
        """The header fields and the empty line after them, as received."""
        return b"".join(f.raw for f in self.fields) + self.separator

    def chunks(self) -> Iterator[bytes]:
        """The whole message in pieces: the header section, then the body as stored."""
        yield self.header_section
        yield from body_chunks(self.body)

    def get_all(self, name: str) -> list[HeaderField]:
        """Every field named `name` (any case), top to bottom."""
        lname = name.lower()
        return [f for f in self.fields if f.lname == lname]

    def get(self, name: str) -> HeaderField | None:
        """The first (topmost) field named `name`, if any."""
        lname = name.lower()
        return next((f for f in self.fields if f.lname == lname), None)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def count(self, name: str) -> int:
        lname = name.lower()
        return sum(1 for f in self.fields if f.lname == lname)

    def select(
        self, names: Iterable[str], *, exclude: HeaderField | None = None
    ) -> list[HeaderField | None]:
        """RFC 6376 §5.4.2: for each name in order, the lowest not yet used instance.

        A name listed more often than the field occurs selects None (the null string) for the
        extra entries. `exclude` (the signature field itself) is never selected.
        """
        wanted = list(map(str.lower, names))  # (a C loop: h= lists are long)
        remaining: dict[str, list[HeaderField] | None] = dict.fromkeys(wanted)
        for f in self.fields:
            if f.lname in remaining and f is not exclude:
                stack = remaining[f.lname]
                if stack is None:
                    remaining[f.lname] = [f]
                else:
                    stack.append(f)
        return [stack.pop() if stack else None for stack in map(remaining.__getitem__, wanted)]

    def prepend(self, raw_fields: bytes | Sequence[bytes]) -> Message:
        """A new message with header fields (each with its line ending) added at the top."""
        data = raw_fields if isinstance(raw_fields, bytes) else b"".join(raw_fields)
        return Message.from_bytes(data + self.raw)


def to_crlf(data: bytes) -> bytes:
    """Bare LF line endings as CRLF (CRLF pairs are left alone)."""
    if b"\n" not in data:
        return data
    if b"\r\n" not in data:
        return data.replace(b"\n", b"\r\n")
    # CRLF folded to LF, then every LF widened: a tenth of the time of a look-behind pattern
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def read_message(data: bytes, *, limits: MessageLimits = DEFAULT_LIMITS) -> Message:
    """A message read from a file or pipe: bare LF treated as CRLF, then split."""
    return Message.from_bytes(to_crlf(data), limits=limits)


def _header_end(data: bytes) -> int:
    """Offset of the empty line ending the header section, or -1 when there is none."""
    if data.startswith(b"\r\n") or data.startswith(b"\n"):
        return 0
    crlf = data.find(b"\n\r\n")
    lf = data.find(b"\n\n", 0, crlf + 2 if crlf >= 0 else len(data))
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf + 1
    return crlf + 1 if crlf >= 0 else -1


def _split(
    data: bytes, limits: MessageLimits, strict: bool = True
) -> tuple[tuple[HeaderField, ...], bytes, bytes]:
    end = _header_end(data)
    if end < 0:  # header section only (possibly without a final line ending)
        header, separator, body = data, b"", b""
    else:
        header = data[:end]
        sep_len = 2 if data.startswith(b"\r\n", end) else 1
        separator, body = data[end : end + sep_len], data[end + sep_len :]
    if len(header) > limits.max_header_bytes:
        raise MessageError(
            f"header section is {len(header)} bytes, over the limit of {limits.max_header_bytes}"
        )
    if not header:
        return (), separator, body
    if strict and b"\x00" in header:
        line = header.count(b"\n", 0, header.index(b"\x00")) + 1
        raise MessageError(f"NUL character in header line {line}")
    if header[0] in b" \t":
        if strict:
            raise MessageError("line 1 is a continuation line: the message has no header")
        return _split_slowly(header, limits, strict), separator, body
    found = _FIELD.findall(header)
    if len(found) > limits.max_fields:
        raise MessageError(f"more than {limits.max_fields} header fields")
    if sum(map(len, map(_first, found))) == len(header):  # the fields tile the section
        return (
            tuple(
                [
                    _new_field(
                        (
                            name,
                            value[:-1] if raw[-2:] == b"\r\n" else value,  # not the final CR
                            raw,
                            name.decode("ascii").lower(),
                        )
                    )
                    for raw, name, value in found
                ]
            ),
            separator,
            body,
        )
    return _split_slowly(header, limits, strict), separator, body


def _split_slowly(
    header: bytes, limits: MessageLimits, strict: bool = True
) -> tuple[HeaderField, ...]:
    """Field by field, to say where the header section goes wrong (strict), or to keep the
    lines that are not fields as nameless ones (lenient)."""
    fields: list[HeaderField] = []
    pos, size = 0, len(header)
    while pos < size:
        if len(fields) >= limits.max_fields:
            raise MessageError(f"more than {limits.max_fields} header fields")
        match = _FIELD.match(header, pos)
        if match is None:
            if not strict:  # the line and its continuation lines, kept but nameless
                junk = _JUNK.match(header, pos)
                assert junk is not None  # it matches any non-empty rest
                fields.append(HeaderField(b"", b"", junk.group(), ""))
                pos = junk.end()
                continue
            line = header.count(b"\n", 0, pos) + 1
            shown = header[pos : pos + 40].split(b"\n")[0].rstrip(b"\r")
            text = repr(shown)[1:]  # quoted, non-ASCII and control bytes escaped once (\xe3)
            raise MessageError(f"header line {line} is not a header field: {text}")
        raw, name, value = match.group(1, 2, 3)
        if raw.endswith(b"\r\n"):
            value = value[:-1]  # the CR of the final CRLF
        fields.append(HeaderField(name, value, raw, name.decode("ascii").lower()))
        pos = match.end()
    return tuple(fields)


def fold_field(name: str, value: str, *, width: int = FOLD_WIDTH, linesep: str = "\r\n") -> str:
    """`Name: value` folded before `width` columns (RFC 5322 §2.2.3), without a final line
    ending. A line break goes before one of the value's spaces, so unfolding gives the value
    back exactly; a word longer than a line stays whole. The one folder of our header fields.

    Raises ValueError when the value holds CR or LF: it must come unfolded, and a line break
    inside would let a value inject header fields.
    """
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise ValueError(f"not a header field: {name!r}: {value!r}")
    words = value.split(" ")
    line = f"{name}:"
    lines: list[str] = []
    empty = True  # nothing but the name on the current line
    for word in words:
        piece = " " + word
        if word and not empty and len(line) + len(piece) > width:
            lines.append(line)
            line = piece
        else:
            line += piece
        empty = empty and not word
    lines.append(line)
    return linesep.join(lines)
