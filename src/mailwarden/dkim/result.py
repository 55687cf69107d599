"""The outcome of one DKIM-Signature: `DKIMStatus` (RFC 8601 §2.7.1) and `DKIMResult`, with
what Authentication-Results and DMARC need from the signature."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mailwarden.frozen import quick_init

__all__ = ["DKIMReason", "DKIMResult", "DKIMStatus"]


class DKIMStatus(StrEnum):
    """RFC 8601 §2.7.1 results of one signature (none: the message has no signature)."""

    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"
    POLICY = "policy"
    NONE = "none"


class DKIMReason(StrEnum):
    """Why a signature got its result, in RFC 6376 / RFC 8301 terms (beside the words)."""

    VERIFIED = "verified"  # §6.1.3: body hash and signature verified
    UNREADABLE_MESSAGE = "unreadable-message"  # the message itself could not be split
    SYNTAX_ERROR = "syntax-error"  # §3.5, §6.1.1: a malformed tag list or tag value
    MISSING_TAG = "missing-tag"  # §6.1.1: a required tag is absent
    UNSUPPORTED_VERSION = "unsupported-version"  # §6.1.1: v= other than 1
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"  # §3.3, RFC 8463
    UNSUPPORTED_CANONICALIZATION = "unsupported-canonicalization"  # §3.4
    UNSUPPORTED_QUERY_METHOD = "unsupported-query-method"  # §3.5 q=
    FROM_NOT_SIGNED = "from-not-signed"  # §5.4: h= must include From
    IDENTITY_MISMATCH = "identity-mismatch"  # §6.1.1: i= not d= or below; or key t=s
    EXPIRED = "expired"  # §3.5 x=: the signature expired
    FUTURE_TIMESTAMP = "future-timestamp"  # §3.5 t=: signed in the future
    NOT_CHECKED = "not-checked"  # past the number of signatures checked per message
    DNS_ERROR = "dns-error"  # §6.1.2: the key lookup failed temporarily
    NO_KEY = "no-key"  # §6.1.2: no key record at the selector
    KEY_SYNTAX_ERROR = "key-syntax-error"  # §3.6.1: an unusable key record
    KEY_REVOKED = "key-revoked"  # §3.6.1: empty p=
    KEY_TYPE_MISMATCH = "key-type-mismatch"  # §3.6.1 k= against a=
    HASH_NOT_ALLOWED = "hash-not-allowed"  # §3.6.1 h= of the key record
    KEY_NOT_FOR_EMAIL = "key-not-for-email"  # §3.6.1 s= of the key record
    KEY_TOO_SHORT = "key-too-short"  # RFC 8301 §3.2: RSA under 1024 bits
    LENGTH_EXCEEDS_BODY = "length-exceeds-body"  # §3.5 l= longer than the body
    BODY_HASH_MISMATCH = "body-hash-mismatch"  # §3.7: the body was altered
    SIGNATURE_MISMATCH = "signature-mismatch"  # §3.7: the signed header fields were altered
    SHA1_FORBIDDEN = "sha1-forbidden"  # RFC 8301 §3.1: rsa-sha1 (policy)


@quick_init
@dataclass(frozen=True, slots=True)
class DKIMResult:
    """The outcome of one DKIM-Signature, with what Authentication-Results needs."""

    result: DKIMStatus
    reason: str
    reason_code: DKIMReason
    domain: str = ""  # d= (header.d)
    selector: str = ""  # s= (header.s)
    algorithm: str = ""  # a= (header.a)
    key_bits: int | None = None
    header_b: str = ""  # shortest prefix of b= (8+ chars) unique in the message (RFC 6008)
    signature_b: str = ""  # the whole b= value
    identity: str = ""  # i= (header.i)
    canonicalization: str = ""
    signed_headers: tuple[str, ...] = ()
    timestamp: int | None = None
    expiration: int | None = None
    body_length: int | None = None  # l=
    body_length_unsigned: int | None = None  # canonical body bytes after l= (not signed)
    testing: bool = False  # the key record has t=y
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this result, for every command that shows one."""
        return {
            "result": self.result.value,
            "reason": self.reason,
            "reason_code": self.reason_code.value,
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": self.algorithm,
            "key_bits": self.key_bits,
            "header_b": self.header_b,
            "identity": self.identity,
            "canonicalization": self.canonicalization,
            "signed_headers": list(self.signed_headers),
            "timestamp": self.timestamp,
            "expiration": self.expiration,
            "body_length": self.body_length,
            "body_length_unsigned": self.body_length_unsigned,
            "testing": self.testing,
            "warnings": list(self.warnings),
        }
