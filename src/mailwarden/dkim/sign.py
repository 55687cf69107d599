"""DKIM signing (RFC 6376 §5): rsa-sha256 and ed25519-sha256, one key or several at once.

`sign` returns one DKIM-Signature header field (bytes, CRLF-terminated) to prepend to the
message; `sign_many` signs with several keys (dual RSA + Ed25519 signing) computing the body
hash once; `sign_header` completes a DKIM-like field written by the caller (the primitive ARC
and exact test vectors use).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from mailwarden.dns import is_domain_name, to_ascii
from mailwarden.message import HeaderField, Message, MessageError

from .canon import BodyHasher, Canon, header_hash_input, parse_canonicalization
from .crypto import Algorithm, PrivateKey, sign_data
from .keygen import MIN_RSA_BITS
from .tags import TagListError, encode_quoted_printable, parse_tag_list

__all__ = [
    "DEFAULT_SIGNED_HEADERS",
    "SigningError",
    "SigningKey",
    "sign",
    "sign_header",
    "sign_many",
    "signed_header_names",
]

# Fields signed by default (RFC 6376 §5.4.1's recommendations, plus list headers). Each is
# over-signed: named once more than it occurs, so that none can be added after signing.
DEFAULT_SIGNED_HEADERS = (
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "in-reply-to",
    "references",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
LINE_WIDTH = 76
FIELD_NAME = b"DKIM-Signature"
# RFC 5322 §3.6.8: field-name = 1*ftext, printable US-ASCII except ":" (no space, no control)
_FIELD_NAME = re.compile(r"[!-9;-~]+", re.ASCII)


class SigningError(ValueError):
    """The message cannot be signed as asked (no From, bad domain, key/algorithm mismatch)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key and the selector its public key is published under."""

    selector: str
    private_key: PrivateKey
    algorithm: Algorithm | None = None  # None: rsa-sha256 or ed25519-sha256 from the key

    def resolved_algorithm(self) -> Algorithm:
        algorithm = self.algorithm or Algorithm.for_key(self.private_key)
        if algorithm.key_type is not Algorithm.for_key(self.private_key).key_type:
            raise SigningError(f"a {algorithm} signature needs a {algorithm.key_type} key")
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
            raise SigningError(  # RFC 8301 §3.2: signers MUST use RSA keys of 1024 bits or more
                f"a {key.key_size}-bit RSA key is too short: RFC 8301 §3.2 forbids signing "
                f"with keys under {MIN_RSA_BITS} bits"
            )
        return algorithm


def signed_header_names(
    message: Message,
    headers: Iterable[str] | None = None,
    *,
    oversign: bool | Iterable[str] = True,
) -> list[str]:
    """The h= list: each name (lower case) as often as it occurs, plus once more when it is
    over-signed: every name if `oversign` is True, none if False, else the names it lists.

    Over-signed names absent from the message are listed once, so they cannot be added
    (RFC 6376 §8.15); the others are listed only as often as they occur. SigningError for a
    name that is not a header field name (a space inside, a colon).
    """
    every = oversign is True
    extra = frozenset() if isinstance(oversign, bool) else {h.strip().lower() for h in oversign}
    names: list[str] = []
    for name in dict.fromkeys(h.strip().lower() for h in (headers or DEFAULT_SIGNED_HEADERS)):
        if not name:
            continue
        if not _FIELD_NAME.fullmatch(name):
            raise SigningError(
                f"invalid header field name {name!r}: printable ASCII without spaces or colons "
                "(RFC 5322 §3.6.8)"
            )
        more = every or name in extra
        names.extend([name] * (message.count(name) + (1 if more else 0)))
    return names


def _fold(tags: Sequence[tuple[str, str]], start: int) -> str:
    """Tags joined with "; ", folded at LINE_WIDTH (h= may break after a colon)."""
    out: list[str] = []
    column = start
    for index, (name, value) in enumerate(tags):
        last = index == len(tags) - 1
        text = f"{name}={value}" + ("" if last else ";")
        atoms = [text]
        if name == "h":
            items = text.split(":")
            atoms = [item + ":" for item in items[:-1]] + [items[-1]]
        for n, atom in enumerate(atoms):
            space = " " if n == 0 else ""
            if column + len(space) + len(atom) > LINE_WIDTH and column > 1:
                out.append("\r\n ")
                column = 1
                space = ""
            out.append(space + atom)
            column += len(space) + len(atom)
    return "".join(out)


def _fold_base64(data: str, column: int) -> str:
    out: list[str] = []
    while data:
        room = LINE_WIDTH - column
        if room <= 8:
            out.append("\r\n ")
            column, room = 1, LINE_WIDTH - 1
        out.append(data[:room])
        column += len(data[:room])
        data = data[room:]
    return "".join(out)


def sign_header(
    message: Message,
    value: bytes,
    private_key: PrivateKey,
    *,
    name: bytes = FIELD_NAME,
) -> bytes:
    """Complete a signature field whose value ends with an empty "b=": sign and fill b=.

    The tags a=, c= and h= of `value` say what to sign; everything else is signed as written,
    so a caller can reproduce a given header byte for byte. Returns the whole field with CRLF.
    """
    try:
        tags = parse_tag_list(value)
    except TagListError as exc:
        raise SigningError(f"malformed signature template: {exc}") from None
    if not value.rstrip(b" \t\r\n").endswith(b"b=") or tags.get("b", "x") != "":
        raise SigningError('the template must end with an empty "b=" tag')
    try:
        algorithm = Algorithm(tags.get("a", "").lower())
    except ValueError:
        raise SigningError(f"template: unknown algorithm a={tags.get('a', '')}") from None
    try:
        header_canon, _ = parse_canonicalization(tags.get("c", "simple/simple"))
    except ValueError as exc:
        raise SigningError(f"template: {exc}") from None
    signed = [h.strip(" \t\r\n").lower() for h in tags.get("h", "").split(":")]
    value = value.rstrip(b" \t\r\n")
    field = HeaderField.make(name, value)
    data = header_hash_input(message, signed, header_canon is Canon.RELAXED, field)
    try:
        signature = sign_data(private_key, algorithm, data)
    except TypeError as exc:
        raise SigningError(str(exc)) from None
    b64 = base64.b64encode(signature).decode("ascii")
    last_line = (name + b":" + value).rsplit(b"\n", 1)[-1]
    return name + b":" + value + _fold_base64(b64, len(last_line)).encode("ascii") + b"\r\n"


def message_to_sign(
    message: Message | bytes, error: type[ValueError] = SigningError, verb: str = "sign"
) -> Message:
    """The message as a `Message`; `error` ("cannot sign: ...") when it cannot be split."""
    if isinstance(message, Message):
        return message
    try:
        return Message.from_bytes(message)
    except MessageError as exc:
        raise error(f"cannot {verb}: {exc}") from None


def signing_name(value: str, what: str, error: type[ValueError] = SigningError) -> str:
    """A d=/s= value in A-label form, lower case; `error` when it is not a domain name."""
    try:
        name = to_ascii(value.strip().rstrip(".").lower())
    except ValueError:
        raise error(f"invalid {what} {value!r}") from None
    if not is_domain_name(name):
        raise error(f"invalid {what} {value!r}")
    return name


def sign_many(
    message: Message | bytes,
    domain: str,
    keys: Sequence[SigningKey],
    *,
    headers: Iterable[str] | None = None,
    oversign: bool | Iterable[str] = True,
    canonicalization: tuple[str, str] = ("relaxed", "relaxed"),
    identity: str | None = None,
    timestamp: int | None = None,
    expiration: int | None = None,
    body_length: bool = False,
    clock: Callable[[], float] = time.time,
) -> list[bytes]:
    """One DKIM-Signature field per key (same d=, tags and body hash), in the order given.

    `timestamp` defaults to the clock (t=); `expiration` is an absolute x=; `body_length`
    adds l= (never by default: it lets anyone append to the body). `oversign`: every signed
    name (True), none (False), or the names listed (see `signed_header_names`).
    """
    msg = message_to_sign(message)
    if msg.get("from") is None:  # RFC 6376 §5.4: From must be signed
        raise SigningError("the message has no From header field")
    d = signing_name(domain, "domain")
    try:
        header_canon, body_canon = parse_canonicalization("/".join(canonicalization))
    except ValueError as exc:
        raise SigningError(str(exc)) from None
    if identity is not None:
        if any(ord(c) < 0x20 or c == "\x7f" for c in identity):
            raise SigningError(f"identity {identity!r} holds a control character")
        _, at, i_domain = identity.rpartition("@")
        i_dom = signing_name(i_domain, "identity domain") if at else ""
        if not at or (i_dom != d and not i_dom.endswith("." + d)):
            raise SigningError(f"identity {identity!r} is not within {d}")
    names = signed_header_names(msg, headers, oversign=oversign)
    if "from" not in names:
        raise SigningError("the signed header list must include From")
    t = int(clock()) if timestamp is None else timestamp
    if expiration is not None and expiration <= t:
        raise SigningError("expiration must be after the signing time")
    hasher = BodyHasher(msg.body)
    relaxed_body = body_canon is Canon.RELAXED
    length = hasher.length(relaxed_body) if body_length else None
    bh = base64.b64encode(hasher.digest(relaxed_body, "sha256", length)).decode("ascii")
    out: list[bytes] = []
    for key in keys:
        selector = signing_name(key.selector, "selector")
        algorithm = key.resolved_algorithm()
        if algorithm is Algorithm.RSA_SHA1:
            raise SigningError("rsa-sha1 must not be used for signing (RFC 8301)")
        tags: list[tuple[str, str]] = [
            ("v", "1"),
            ("a", algorithm.value),
            ("c", f"{header_canon}/{body_canon}"),
            ("d", d),
            ("s", selector),
            ("t", str(t)),
        ]
        if expiration is not None:
            tags.append(("x", str(expiration)))
        if identity is not None:  # RFC 6376 §2.11: dkim-quoted-printable
            tags.append(("i", encode_quoted_printable(identity)))
        if length is not None:
            tags.append(("l", str(length)))
        tags += [("h", ":".join(names)), ("bh", bh), ("b", "")]
        value = _fold(tags, len(FIELD_NAME) + 1).encode("utf-8")
        out.append(sign_header(msg, value, key.private_key))
    return out


def sign(
    message: Message | bytes,
    domain: str,
    selector: str,
    private_key: PrivateKey,
    *,
    algorithm: Algorithm | str | None = None,
    headers: Iterable[str] | None = None,
    oversign: bool = True,
    canonicalization: tuple[str, str] = ("relaxed", "relaxed"),
    identity: str | None = None,
    timestamp: int | None = None,
    expiration: int | None = None,
    body_length: bool = False,
    clock: Callable[[], float] = time.time,
) -> bytes:
    """One DKIM-Signature header field (CRLF-terminated) for `message`; SigningError if not."""
    try:
        alg = Algorithm(algorithm) if algorithm is not None else None
    except ValueError:
        raise SigningError(f"unknown algorithm {algorithm!r}") from None
    return sign_many(
        message,
        domain,
        [SigningKey(selector, private_key, alg)],
        headers=headers,
        oversign=oversign,
        canonicalization=canonicalization,
        identity=identity,
        timestamp=timestamp,
        expiration=expiration,
        body_length=body_length,
        clock=clock,
    )[0]
