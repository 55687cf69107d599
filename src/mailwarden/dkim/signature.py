"""The DKIM-Signature model and its parser (RFC 6376 §3.5, §6.1.1): `parse_signature` turns a
field value into a `Signature`, or raises `SignatureError` with the permerror reason.
`header_b_prefixes` gives each signature the header.b prefix of RFC 6008."""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailwarden.dns import to_ascii
from mailwarden.frozen import quick_init

from .canon import Canon, parse_canonicalization
from .crypto import Algorithm
from .result import DKIMReason
from .tags import TagListError, decode_quoted_printable, parse_tag_list

__all__ = ["Signature", "SignatureError", "header_b_prefixes", "parse_signature"]

HEADER_B_MIN = 8  # RFC 6008 §4: header.b carries at least the first 8 characters of b=
REQUIRED_TAGS = ("v", "a", "b", "bh", "d", "h", "s")  # RFC 6376 §3.5
_H_LIST = re.compile(r"[\x21-\x39\x3b-\x7e]+(?::[\x21-\x39\x3b-\x7e]+)*")
# LDH labels (underscore allowed, as in selectors), 1..63 octets each (RFC 6376 §3.5 d=, s=)
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DIGITS = re.compile(r"[0-9]{1,76}")

_ALGORITHMS = {a.value: a for a in Algorithm}


class SignatureError(ValueError):
    """A DKIM-Signature that cannot be verified; the message is the permerror reason, `code`
    the same as a code."""

    def __init__(self, message: str, code: DKIMReason) -> None:
        super().__init__(message)
        self.code = code


@quick_init
@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed, syntactically valid DKIM-Signature (RFC 6376 §3.5)."""

    algorithm: Algorithm
    signature: bytes  # b=, decoded
    body_hash: bytes  # bh=, decoded
    header_canon: Canon
    body_canon: Canon
    domain: str  # d=, lower case, A-labels
    selector: str  # s=, lower case
    signed_headers: tuple[str, ...]  # h=, lower case, in order
    identity: str  # i=, or "@" + d= by default
    length: int | None = None  # l=
    timestamp: int | None = None  # t=
    expiration: int | None = None  # x=
    copied_headers: str | None = None  # z=
    b_text: str = ""  # b= as written, whitespace removed
    tags: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def canonicalization(self) -> str:
        return f"{self.header_canon}/{self.body_canon}"


def _b64(value: str, tag: str) -> bytes:
    text = "".join(value.split())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{tag}= is not valid base64", DKIMReason.SYNTAX_ERROR) from None
    if not data:
        raise SignatureError(f"{tag}= is empty", DKIMReason.SYNTAX_ERROR)
    return data


def _number(tags: dict[str, str], tag: str) -> int | None:
    if tag not in tags:
        return None
    value = tags[tag]
    if not _DIGITS.fullmatch(value):
        raise SignatureError(f"{tag}={value!r} is not a decimal number", DKIMReason.SYNTAX_ERROR)
    return int(value)


def _domain(value: str, what: str) -> str:
    name = value.strip().lower()
    if not name.isascii():
        try:
            name = to_ascii(name)
        except ValueError:
            raise SignatureError(
                f"{what} {value!r} is not a valid domain name", DKIMReason.SYNTAX_ERROR
            ) from None
    if len(name) > 253 or not _DOMAIN.fullmatch(name):
        raise SignatureError(
            f"{what} {value!r} is not a valid domain name", DKIMReason.SYNTAX_ERROR
        )
    return name


def parse_signature(value: bytes | str) -> Signature:
    """Parse and check a DKIM-Signature value (RFC 6376 §3.5, §6.1.1), clock aside."""
    try:
        tags = parse_tag_list(value)
    except TagListError as exc:
        raise SignatureError(f"malformed signature: {exc}", DKIMReason.SYNTAX_ERROR) from None
    missing = [tag for tag in REQUIRED_TAGS if tag not in tags]
    if missing:
        raise SignatureError(
            f"signature lacks required tag{'s' * (len(missing) > 1)} "
            + ", ".join(f"{t}=" for t in missing),
            DKIMReason.MISSING_TAG,
        )
    if tags["v"] != "1":
        raise SignatureError(
            f"unsupported signature version v={tags['v']}", DKIMReason.UNSUPPORTED_VERSION
        )
    algorithm = _ALGORITHMS.get(tags["a"].lower())
    if algorithm is None:
        raise SignatureError(
            f"unsupported algorithm a={tags['a']}", DKIMReason.UNSUPPORTED_ALGORITHM
        )
    try:
        header_canon, body_canon = parse_canonicalization(tags.get("c", "simple/simple"))
    except ValueError as exc:
        raise SignatureError(str(exc), DKIMReason.UNSUPPORTED_CANONICALIZATION) from None
    domain = _domain(tags["d"], "d=")
    selector_text = "".join(tags["s"].split()).lower()
    if not _DOMAIN.fullmatch(selector_text):
        raise SignatureError(f"s={tags['s']!r} is not a valid selector", DKIMReason.SYNTAX_ERROR)
    h_text = tags["h"].lower()
    if " " in h_text or "\t" in h_text or "\n" in h_text:
        h_text = "".join(h_text.split())
    signed = tuple(h_text.split(":"))
    if not _H_LIST.fullmatch(h_text):
        bad = next((n for n in signed if not _H_LIST.fullmatch(n)), "")
        raise SignatureError(
            f"h= holds an invalid header field name {bad!r}", DKIMReason.SYNTAX_ERROR
        )
    if "from" not in signed:
        raise SignatureError(
            "From is not signed (h= must include it, RFC 6376 §5.4)", DKIMReason.FROM_NOT_SIGNED
        )
    identity = "@" + domain
    if "i" in tags:  # RFC 6376 §2.11, §3.5: i= is dkim-quoted-printable
        try:
            identity = decode_quoted_printable(tags["i"])
        except TagListError as exc:
            raise SignatureError(f"i={tags['i']!r}: {exc}", DKIMReason.SYNTAX_ERROR) from None
    local, at, i_domain = identity.rpartition("@")
    if not at:
        raise SignatureError(f"i={identity!r} has no '@'", DKIMReason.SYNTAX_ERROR)
    i_domain = _domain(i_domain, "i= domain")
    if i_domain != domain and not i_domain.endswith("." + domain):  # RFC 6376 §6.1.1
        raise SignatureError(
            f"i= domain {i_domain} is not d= {domain} or a subdomain of it",
            DKIMReason.IDENTITY_MISMATCH,
        )
    if "q" in tags:
        methods = [m.strip(" \t\r\n").lower() for m in tags["q"].split(":")]
        if not any(m == "dns/txt" or m.startswith("dns/txt/") for m in methods):
            raise SignatureError(
                f"no supported query method in q={tags['q']}", DKIMReason.UNSUPPORTED_QUERY_METHOD
            )
    timestamp = _number(tags, "t")
    expiration = _number(tags, "x")
    if timestamp is not None and expiration is not None and expiration < timestamp:
        raise SignatureError("x= (expiration) is before t= (signing time)", DKIMReason.SYNTAX_ERROR)
    b_text = "".join(tags["b"].split())
    return Signature(
        algorithm=algorithm,
        signature=_b64(b_text, "b"),
        body_hash=_b64(tags["bh"], "bh"),
        header_canon=header_canon,
        body_canon=body_canon,
        domain=domain,
        selector=selector_text,
        signed_headers=signed,
        identity=f"{local}@{i_domain}" if "i" in tags else identity,
        length=_number(tags, "l"),
        timestamp=timestamp,
        expiration=expiration,
        copied_headers=tags.get("z"),
        b_text=b_text,
        tags=tags,
    )


def loose_tags(value: bytes) -> dict[str, str]:
    """Best-effort tags of a signature that failed to parse, to fill in the result."""
    out: dict[str, str] = {}
    for spec in value.decode("utf-8", "replace").split(";"):
        name, eq, text = spec.partition("=")
        name = name.strip()
        if eq and name in ("a", "b", "d", "s", "i") and name not in out:
            out[name] = "".join(text.split()) if name == "b" else text.strip()
    return out


def _common_prefix(left: str, right: str) -> int:
    n = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        n += 1
    return n


def header_b_prefixes(values: Sequence[str]) -> list[str]:
    """For each b= value, its shortest prefix of 8+ characters that no other value shares.

    Sorted neighbours share the longest prefixes, so comparing each value with them is enough
    (O(n log n) even for a message with hundreds of signatures).
    """
    ordered = sorted(set(values))
    need: dict[str, int] = {}
    for left, right in itertools.pairwise(ordered):
        common = _common_prefix(left, right) + 1
        need[left] = max(need.get(left, 0), common)
        need[right] = max(need.get(right, 0), common)
    return [value[: max(HEADER_B_MIN, need.get(value, 0))] for value in values]
