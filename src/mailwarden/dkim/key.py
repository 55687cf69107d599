"""DKIM key records (RFC 6376 §3.6.1) and their lookup at `selector._domainkey.domain`.

`parse_key_record` is pure; `fetch_key` does the DNS query and returns either a `KeyRecord`
or a typed `KeyFailure` (never raises for a DNS or record problem).
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass, field, replace
from enum import StrEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from mailwarden.dns import NoData, NXDomain, RdType, Resolver, TemporaryFailure
from mailwarden.frozen import quick_init

from .result import DKIMReason
from .tags import TagListError, parse_tag_list

__all__ = [
    "KeyFailure",
    "KeyRecord",
    "KeyRecordError",
    "KeyType",
    "PublicKey",
    "fetch_key",
    "key_name",
    "load_public_key",
    "parse_key_record",
]

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class KeyType(StrEnum):
    """k= values (RFC 6376 §3.6.1, RFC 8463 §4)."""

    RSA = "rsa"
    ED25519 = "ed25519"


class KeyRecordError(ValueError):
    """A key record that cannot be used; the message is the permerror reason."""


@quick_init
@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A parsed key record. `public_key` is None when the key is revoked (empty p=)."""

    key_type: KeyType
    public_key: PublicKey | None
    key_bits: int  # RSA modulus size; 256 for Ed25519; 0 when revoked
    hash_algorithms: tuple[str, ...] | None = None  # h=; None: any
    service_types: tuple[str, ...] = ("*",)  # s=
    flags: tuple[str, ...] = ()  # t=
    notes: str = ""  # n=
    raw: str = field(default="", repr=False, compare=False)
    ttl: int = field(default=0, compare=False)  # DNS TTL of the record it came from

    @property
    def revoked(self) -> bool:
        return self.public_key is None

    @property
    def testing(self) -> bool:
        """t=y: the domain is testing DKIM (RFC 6376 §3.6.1)."""
        return "y" in self.flags

    @property
    def strict_identity(self) -> bool:
        """t=s: i= must use exactly the d= domain, not a subdomain."""
        return "s" in self.flags

    def allows_hash(self, name: str) -> bool:
        return self.hash_algorithms is None or name in self.hash_algorithms

    def allows_email(self) -> bool:
        return "*" in self.service_types or "email" in self.service_types


@dataclass(frozen=True, slots=True)
class KeyFailure:
    """Why no key could be had: `temporary` (temperror) or not (permerror)."""

    reason: str
    code: DKIMReason
    temporary: bool = False
    ttl: int = 0  # how long the outcome may be cached (0: not at all)


def _colon_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip(" \t\r\n").lower() for item in value.split(":") if item.strip())


def load_public_key(key_type: KeyType, data: bytes) -> tuple[PublicKey, int]:
    """The key and its size in bits, from p= bytes (KeyRecordError when unusable).

    RSA: SubjectPublicKeyInfo DER (RFC 6376 §3.6.1), or a bare RSAPublicKey DER as some
    publishers use. Ed25519: the raw 32-byte key (RFC 8463 §4).
    """
    if key_type is KeyType.ED25519:
        if len(data) != 32:
            raise KeyRecordError(f"Ed25519 key is {len(data)} bytes, not 32")
        return ed25519.Ed25519PublicKey.from_public_bytes(data), 256
    try:  # cryptography reads both SubjectPublicKeyInfo and a bare PKCS#1 RSAPublicKey
        key = load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyRecordError("p= is not a valid RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyRecordError("p= holds a public key that is not RSA")
    return key, key.key_size


def parse_key_record(record: bytes | str) -> KeyRecord:
    """Parse a key record's TXT text (RFC 6376 §3.6.1); KeyRecordError when unusable."""
    try:
        text = record.decode("utf-8") if isinstance(record, bytes) else record
        tags = parse_tag_list(text)
    except UnicodeDecodeError:
        raise KeyRecordError("key record is not UTF-8 text") from None
    except TagListError as exc:
        raise KeyRecordError(f"malformed key record: {exc}") from None
    if "v" in tags:
        if next(iter(tags)) != "v":
            raise KeyRecordError("v= is not the first tag of the key record")
        if tags["v"] != "DKIM1":
            raise KeyRecordError(f"unknown key record version v={tags['v']}")
    try:
        key_type = KeyType(tags.get("k", "rsa").strip().lower())
    except ValueError:
        raise KeyRecordError(f"unknown key type k={tags.get('k')}") from None
    if "p" not in tags:
        raise KeyRecordError("key record has no p= tag")
    p_text = "".join(tags["p"].split())
    hashes = _colon_list(tags["h"]) if "h" in tags else None
    services = _colon_list(tags.get("s", "*")) or ("*",)
    flags = _colon_list(tags.get("t", ""))
    if not p_text:  # §3.6.1: an empty p= means the key has been revoked
        return KeyRecord(key_type, None, 0, hashes, services, flags, tags.get("n", ""), text)
    try:
        data = base64.b64decode(p_text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyRecordError("p= is not valid base64") from None
    public_key, bits = load_public_key(key_type, data)
    return KeyRecord(key_type, public_key, bits, hashes, services, flags, tags.get("n", ""), text)


_SHARED_KEY_BYTES = 4096  # an RSA-4096 record is about 800 bytes


def _parse_shared(text: bytes) -> KeyRecord:
    """`parse_key_record`, a valid record's text parsed once for the whole process (the key
    object is immutable: a fresh verifier, such as a cold pipeline's, need not decode the
    DER again); the TTL stays the DNS answer's."""
    if len(text) > _SHARED_KEY_BYTES:
        return parse_key_record(text)
    return _parse_remembered(text)


@functools.lru_cache(maxsize=1024)
def _parse_remembered(text: bytes) -> KeyRecord:
    return parse_key_record(text)  # a KeyRecordError is raised afresh each time, not kept


def key_name(selector: str, domain: str) -> str:
    """The DNS name of a key record (RFC 6376 §3.6.2.1)."""
    return f"{selector}._domainkey.{domain}"


async def fetch_key(resolver: Resolver, selector: str, domain: str) -> KeyRecord | KeyFailure:
    """Look up and parse the key record of `selector` at `domain`.

    NXDOMAIN or no TXT record: permerror "no key"; a temporary DNS failure: temperror. With
    several TXT records (RFC 6376 §3.6.2.2 leaves that undefined) the first usable one wins.
    """
    name = key_name(selector, domain)
    try:
        answer = await resolver.resolve(name, RdType.TXT)
    except (NXDomain, NoData) as exc:
        return KeyFailure(
            f"no key for selector {selector!r} ({name}: {exc.kind})", DKIMReason.NO_KEY, ttl=exc.ttl
        )
    except TemporaryFailure as exc:
        return KeyFailure(
            f"key lookup failed: {exc.detail or exc.kind}", DKIMReason.DNS_ERROR, temporary=True
        )
    errors: list[str] = []
    for txt in answer.txt():
        try:
            return replace(_parse_shared(txt.joined), ttl=answer.ttl)
        except KeyRecordError as exc:
            errors.append(str(exc))
    if not errors:
        return KeyFailure(
            f"no key for selector {selector!r} ({name}: no TXT data)", DKIMReason.NO_KEY
        )
    return KeyFailure(errors[0], DKIMReason.KEY_SYNTAX_ERROR, ttl=answer.ttl)
