"""The Sender Rewriting Scheme, as libsrs2 and postsrsd write and read it.

A forwarder rewrites the envelope sender of mail it relays so that SPF (RFC 7208) is checked
against its own domain, and bounces come back to it:

    alice@a.example            ─► SRS0=HHHH=TT=a.example=alice@srs.b.example
    SRS0=HHHH=TT=a.example=alice@fw1.example
                               ─► SRS1=GGGG=fw1.example==HHHH=TT=a.example=alice@srs.b.example

TT is the day number modulo 1024 in two base32 characters (A-Z, 2-7); HHHH the first
characters of the base64 HMAC-SHA1, under the first secret, of the timestamp, domain and local
part (SRS0), or of the first forwarder's host and the rest (SRS1), each lower-cased (ASCII).
A second forwarder rewrites an SRS0 address to SRS1 pointing at the first ("guarded" mode), so
addresses do not grow with every hop. Reversing checks the hash with every secret (in any case,
since MTAs may lower-case local parts) and, for SRS0, that the timestamp is at most `max_age`
days old; SRS1 reverses to the first forwarder's SRS0 address. These are the rules of
libsrs2's srs2.c (Shevek, 2004), which postsrsd uses unchanged, so the addresses of either are
read by the other when they share a secret.

Parsing never raises anything but `SRSError`, whose `reason` is an `SRSReason`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "MAX_ADDRESS",
    "SEPARATORS",
    "SRS",
    "SRSError",
    "SRSReason",
    "is_srs_address",
    "srs_hash",
    "timestamp",
]

SEPARATORS = "=-+"  # the character after SRS0/SRS1 (libsrs2's srs_separators)
TIME_PRECISION = 86400  # one day
TIME_BASECHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32, 5 bits a character
TIME_SLOTS = 1024  # two characters: timestamps wrap after 1024 days
MAX_ADDRESS = 512  # longer input is refused (postsrsd's limit)
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


class SRSReason(StrEnum):
    """Why an address cannot be rewritten or reversed (libsrs2's error kinds)."""

    NOT_SRS = "not-srs"  # no SRS0/SRS1 tag: nothing to reverse
    NO_DOMAIN = "no-domain"  # a sender without @domain
    MALFORMED = "malformed"  # an SRS tag without its hash, timestamp, host or user
    BAD_CHARACTER = "bad-character"  # control characters, spaces or angle brackets
    TOO_LONG = "too-long"
    HASH_TOO_SHORT = "hash-too-short"
    BAD_HASH = "bad-hash"  # forged, or signed with a secret we no longer hold
    BAD_TIMESTAMP = "bad-timestamp"  # not two base32 characters
    EXPIRED = "expired"  # older than max_age days (or from the future)


class SRSError(ValueError):
    """An address SRS cannot handle; `reason` says why."""

    def __init__(self, reason: SRSReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def timestamp(now: float) -> str:
    """Two base32 characters: the day number modulo 1024 (libsrs2 srs_timestamp_create)."""
    day = int(now) // TIME_PRECISION
    return TIME_BASECHARS[(day >> 5) & 31] + TIME_BASECHARS[day & 31]


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def srs_hash(secret: bytes, parts: Iterable[str], length: int = 4) -> str:
    """The first `length` base64 characters of HMAC-SHA1(secret, the parts lower-cased
    (ASCII only) and concatenated) (libsrs2 srs_hash_create)."""
    mac = hmac.new(secret, digestmod=hashlib.sha1)
    for part in parts:
        mac.update(_bytes(part).translate(_LOWER))
    return base64.b64encode(mac.digest()).decode("ascii")[:length]


def is_srs_address(address: str) -> bool:
    """SRS0 or SRS1 (any case) and a separator (libsrs2 SRS_IS_SRS_ADDRESS)."""
    return (
        len(address) >= 5
        and address[:3].upper() == "SRS"
        and address[3] in "01"
        and address[4] in SEPARATORS
    )


def _check_characters(address: str) -> None:
    if len(address) > MAX_ADDRESS:
        raise SRSError(SRSReason.TOO_LONG, f"address longer than {MAX_ADDRESS} characters")
    for char in address:
        if ord(char) <= 0x20 or char in "\x7f<>" or 0xD800 <= ord(char) <= 0xDFFF:
            raise SRSError(SRSReason.BAD_CHARACTER, f"the address holds {char!r}")


@dataclass(frozen=True, slots=True)
class SRS:
    """SRS for one SRS domain with its secrets (the first signs, all verify)."""

    domain: str  # where rewritten addresses point: the dedicated SRS domain
    secrets: tuple[bytes, ...]
    separator: str = "="
    hash_length: int = 4
    hash_min: int | None = None  # shortest hash accepted; None: hash_length (postsrsd -N)
    max_age: int = 21  # days
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        if not self.secrets or not all(self.secrets):
            raise ValueError("SRS needs at least one secret, and no empty one")
        if self.separator not in SEPARATORS or len(self.separator) != 1:
            raise ValueError(f"the separator must be one of {SEPARATORS!r}")
        if not 1 <= self.hash_length <= 27 or not 1 <= (self.hash_min or 1) <= self.hash_length:
            raise ValueError("hash lengths must be 1..27, the minimum at most the length")
        if not 0 <= self.max_age < TIME_SLOTS:
            raise ValueError(f"max_age must be 0..{TIME_SLOTS - 1} days")
        if not self.domain or "@" in self.domain:
            raise ValueError(f"not an SRS domain: {self.domain!r}")

    # -- writing ---------------------------------------------------------------------------
    def _hash(self, *parts: str) -> str:
        return srs_hash(self.secrets[0], parts, self.hash_length)

    def forward(self, sender: str) -> str:
        """The rewritten envelope sender for mail we forward (libsrs2 srs_forward).

        A sender in the SRS domain is kept; an SRS0 address becomes SRS1 pointing at its
        host; an SRS1 address is re-signed for our domain; any other becomes SRS0. An
        SRS-looking local part that does not parse is treated as an ordinary one (the mail
        is still forwarded, and reverses to it). The null sender is never rewritten.
        """
        if sender == "":
            return ""
        _check_characters(sender)
        local, at, host = sender.partition("@")
        if not at:
            raise SRSError(SRSReason.NO_DOMAIN, "the sender has no @domain")
        if not local or not host:
            raise SRSError(SRSReason.MALFORMED, "the sender has an empty local part or domain")
        if host.lower() == self.domain.lower():
            return sender
        tag = local[:4].upper()
        if len(local) > 5 and tag == "SRS1" and local[4] in SEPARATORS:
            first = self._srs1_parts(local)
            if first is not None:
                first_host, rest = first
                return self._srs1(first_host, rest)
        if len(local) > 5 and tag == "SRS0" and local[4] in SEPARATORS:
            return self._srs1(host, local[4:])  # the rest keeps its separator
        stamp = timestamp(self.clock())
        digest = self._hash(stamp, host, local)
        return f"SRS0{self.separator}{digest}={stamp}={host}={local}@{self.domain}"

    def _srs1(self, first_host: str, rest: str) -> str:
        digest = self._hash(first_host, rest)
        return f"SRS1{self.separator}{digest}={first_host}={rest}@{self.domain}"

    @staticmethod
    def _srs1_parts(local: str) -> tuple[str, str] | None:
        """(first host, rest) of an SRS1 local part, or None when it does not parse."""
        digest, sep, tail = local[5:].partition("=")
        if not sep or not digest:
            return None
        first_host, sep, rest = tail.partition("=")
        if not sep or not first_host or not rest:
            return None
        return first_host, rest

    # -- reading ---------------------------------------------------------------------------
    def reverse(self, address: str) -> str:
        """Where a bounce to `address` goes (libsrs2 srs_reverse): the original sender for
        SRS0, the first forwarder's SRS0 address for SRS1. SRSError when it is not an SRS
        address, is malformed, forged or expired. The domain part is not looked at: the
        caller routes only addresses of its SRS domain here."""
        _check_characters(address)
        local = address.split("@", 1)[0]
        if not is_srs_address(local):
            raise SRSError(SRSReason.NOT_SRS, "not an SRS address")
        if local[3] == "1":
            digest, sep, tail = local[5:].partition("=")
            if not sep:
                raise SRSError(SRSReason.MALFORMED, "no host in SRS1 address")
            first_host, sep, rest = tail.partition("=")
            if not sep:
                raise SRSError(SRSReason.MALFORMED, "no user in SRS1 address")
            if not first_host or not rest:
                raise SRSError(SRSReason.MALFORMED, "empty host or user in SRS1 address")
            self._check_hash(digest, first_host, rest)
            return f"SRS0{rest}@{first_host}"
        digest, sep, tail = local[5:].partition("=")
        if not sep:
            raise SRSError(SRSReason.MALFORMED, "no timestamp in SRS0 address")
        stamp, sep, tail = tail.partition("=")
        if not sep:
            raise SRSError(SRSReason.MALFORMED, "no host in SRS0 address")
        host, sep, user = tail.partition("=")
        if not sep:
            raise SRSError(SRSReason.MALFORMED, "no user in SRS0 address")
        if not host or not user:
            raise SRSError(SRSReason.MALFORMED, "empty host or user in SRS0 address")
        self._check_timestamp(stamp)  # libsrs2 checks the time first
        self._check_hash(digest, stamp, host, user)
        return f"{user}@{host}"

    def _check_timestamp(self, stamp: str) -> None:
        """At most `max_age` days old (libsrs2 srs_timestamp_check), wrapping at 1024."""
        if len(stamp) != 2:
            raise SRSError(SRSReason.BAD_TIMESTAMP, "the timestamp is not two characters")
        then = 0
        for char in stamp.upper():
            index = TIME_BASECHARS.find(char)
            if index < 0:
                raise SRSError(SRSReason.BAD_TIMESTAMP, "bad base32 character in timestamp")
            then = (then << 5) | index
        now = (int(self.clock()) // TIME_PRECISION) % TIME_SLOTS
        while now < then:
            now += TIME_SLOTS
        if now > then + self.max_age:
            raise SRSError(SRSReason.EXPIRED, f"older than {self.max_age} days")

    def _check_hash(self, digest: str, *parts: str) -> None:
        """Any secret's hash, compared without case (libsrs2 srs_hash_check)."""
        minimum = self.hash_min if self.hash_min is not None else self.hash_length
        if len(digest) < minimum:
            raise SRSError(SRSReason.HASH_TOO_SHORT, "hash too short in SRS address")
        given = digest[: self.hash_length].lower()
        for secret in self.secrets:
            expected = srs_hash(secret, parts, self.hash_length)[: len(given)].lower()
            if hmac.compare_digest(_bytes(given), _bytes(expected)):
                return
        raise SRSError(SRSReason.BAD_HASH, "hash invalid in SRS address")

    def owns(self, address: str) -> bool:
        """Whether `address` is in our SRS domain (where bounces to reverse arrive)."""
        return address.rpartition("@")[2].lower() == self.domain.lower()
