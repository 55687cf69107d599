"""Tag=value lists (RFC 6376 §3.2), shared by DKIM signatures, DKIM key records and ARC.

`parse_tag_list` is strict: a malformed list raises `TagListError` whose message says exactly
what is wrong, so a verifier can report it as the permerror reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "TagListError",
    "decode_quoted_printable",
    "encode_quoted_printable",
    "format_tag_list",
    "parse_tag_list",
    "strip_tag_value",
]

# RFC 6376 §3.2: tag-name = ALPHA *ALNUMPUNC; ALNUMPUNC = ALPHA / DIGIT / "_"
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# tag-value = [ tval *( 1*(WSP / FWS) tval ) ]; tval = 1*VALCHAR; VALCHAR = %x21-3A / %x3C-7E
# (RFC 8616 also lets UTF-8 appear in values, so bytes above 0x7F are accepted too.)
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FWS = " \t\r\n"
_SPEC = r"[ \t\r\n]*[A-Za-z][A-Za-z0-9_]*[ \t\r\n]*=[^;]*"
_TAG_LIST = re.compile(rf"{_SPEC}(?:;{_SPEC})*;?")
_TAG_PAIR = re.compile(r"([A-Za-z][A-Za-z0-9_]*)[ \t\r\n]*=([^;]*)")


class TagListError(ValueError):
    """A tag-list that does not follow RFC 6376 §3.2."""


def parse_tag_list(data: bytes | str) -> dict[str, str]:
    """The tags of a tag-list, in order, with values stripped of surrounding FWS.

    Raises TagListError for an empty tag-spec, a bad tag name, a missing "=", a control
    character in a value, or a tag given twice (RFC 6376 §3.2: then the whole list is invalid).
    Bytes are decoded as UTF-8 (invalid sequences kept as surrogates, so nothing is lost).
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    text = text.strip(_FWS)  # FWS may open and close the list (and a field's final CRLF)
    flat = text  # unfolded, to check characters with C-level str methods
    if "\n" in flat or "\r" in flat:
        flat = flat.replace("\r\n ", " ").replace("\r\n\t", " ")
        flat = flat.replace("\n ", " ").replace("\n\t", " ")
        if "\n" in flat or "\r" in flat:
            raise TagListError("line break that is not folding in the tag-list")
    printable = flat.isascii() and flat.replace("\t", " ").isprintable()
    if not printable and _BAD_VALUE_CHAR.search(flat):
        raise TagListError("control character in the tag-list")
    if not text:
        return {}
    if _TAG_LIST.fullmatch(text):  # well-formed: one C-level pass does the work
        pairs = _TAG_PAIR.findall(text)
        tags = {name: value.strip(_FWS) for name, value in pairs}
        if len(tags) == len(pairs):
            return tags
    return _parse_slowly(text)  # malformed, or a duplicate: find the precise reason


def _parse_slowly(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    specs = text.split(";")
    if specs and not specs[-1].strip(_FWS):
        specs.pop()  # a trailing ";" is allowed
    for number, spec in enumerate(specs, 1):
        name, eq, value = spec.partition("=")
        name = name.strip(_FWS)
        if not eq:
            if not name:
                raise TagListError(f"empty tag-spec (tag {number})")
            raise TagListError(f"tag {name!r} has no '='")
        if not _TAG_NAME.fullmatch(name):
            raise TagListError(f"invalid tag name {name!r}")
        if name in tags:
            raise TagListError(f"tag {name!r} appears more than once")
        tags[name] = value.strip(_FWS)
    return tags


def format_tag_list(tags: Iterable[tuple[str, str]], separator: str = "; ") -> str:
    """Join (name, value) pairs into a tag-list (no folding)."""
    return separator.join(f"{name}={value}" for name, value in tags)


def strip_tag_value(data: bytes, tag: bytes = b"b") -> bytes:
    """`data` with the value of `tag` removed, everything else kept byte for byte.

    RFC 6376 §3.5 (b=): the signature is computed over its own header field with the b= value,
    including surrounding whitespace, treated as the empty string. ";" cannot occur inside a
    value, so the list splits exactly on it.
    """
    parts = data.split(b";")
    for i in range(len(parts) - 1, -1, -1):  # b= is usually last; tags are unique
        name, eq, _ = parts[i].partition(b"=")
        if eq and name.strip(b" \t\r\n") == tag:
            parts[i] = name + eq
            break
    return b";".join(parts)


# RFC 6376 §2.11: dkim-safe-char = %x21-3A / %x3C / %x3E-7E (no ";", no "=", no space)
_QP_UNSAFE = re.compile(r"[^\x21-\x3a\x3c\x3e-\x7e]")
_HEX = frozenset(b"0123456789ABCDEFabcdef")  # ABNF strings ignore case: "A" matches "a"


def decode_quoted_printable(value: str) -> str:
    """A dkim-quoted-printable value decoded (RFC 6376 §2.11): FWS dropped, each hex-octet
    "=XX" turned into its octet, the octets read as UTF-8 (RFC 8616 allows UTF-8 in i=).

    Raises TagListError for an "=" not followed by two hex digits, for octets that are not
    UTF-8, and for control characters (which no identity holds and no header may carry).
    """
    text = "".join(value.split())
    if "=" in text:
        try:  # values parsed from bytes keep undecodable octets as surrogate escapes
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise TagListError("a quoted-printable value that is not text") from None
        out = bytearray()
        position = 0
        while (found := raw.find(b"=", position)) >= 0:
            out += raw[position:found]
            pair = raw[found + 1 : found + 3]
            if len(pair) != 2 or not _HEX.issuperset(pair):
                shown = raw[found : found + 3].decode("utf-8", "replace")
                raise TagListError(f"malformed quoted-printable escape {shown!r}")
            out.append(int(pair, 16))
            position = found + 3
        out += raw[position:]
        try:
            text = out.decode("utf-8")
        except UnicodeDecodeError:
            raise TagListError("quoted-printable octets that are not UTF-8") from None
    if _BAD_VALUE_CHAR.search(text) or any(c in text for c in "\r\n\t"):
        raise TagListError("a control character in a quoted-printable value")
    return text


def encode_quoted_printable(text: str) -> str:
    """`text` as dkim-quoted-printable (RFC 6376 §2.11): every octet that is not a
    dkim-safe-char written as "=XX" (UTF-8 octets each)."""
    return _QP_UNSAFE.sub(
        lambda m: "".join(f"={octet:02X}" for octet in m.group().encode("utf-8")), text
    )
