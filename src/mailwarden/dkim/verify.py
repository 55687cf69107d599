"""DKIM verification (RFC 6376 §6, RFC 8301, RFC 8463).

`DKIMVerifier.verify(message)` checks every signature of a message and returns one
`DKIMResult` each, in the order the fields appear. It never raises for a protocol outcome.
The signature model and its parser are in `signature`, the result type in `result`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from mailwarden.dns import Resolver
from mailwarden.message import HeaderField, Message, MessageError

from .canon import BodyHasher, Canon, header_hash_input
from .crypto import Algorithm, verify_data
from .key import KeyFailure, KeyRecord, fetch_key
from .result import DKIMReason, DKIMResult, DKIMStatus
from .signature import Signature, SignatureError, header_b_prefixes, loose_tags, parse_signature

__all__ = ["DKIMVerifier"]

MAX_SIGNATURES = 10  # signatures checked per message; the rest are reported, not checked
MIN_RSA_BITS = 1024  # RFC 8301 §3.2
MAX_CLOCK_SKEW = 300  # seconds a t= may lie in the future


_KeyOutcome = KeyRecord | KeyFailure
# Members read on the warm path, as module constants: on Python 3.11 a member read through
# its class goes through EnumType.__getattr__'s slow attribute path.
_RELAXED = Canon.RELAXED
_PASS, _VERIFIED = DKIMStatus.PASS, DKIMReason.VERIFIED
_RSA_SHA1 = Algorithm.RSA_SHA1
_MISSING = KeyFailure("not fetched yet", DKIMReason.DNS_ERROR, temporary=True)


def _b_text(value: bytes) -> str:
    """The b= value of a signature that did not parse, whitespace removed ("" if none)."""
    return loose_tags(value).get("b", "")


class DKIMVerifier:
    """Verifies DKIM signatures through a resolver, caching parsed key records for their TTL.

    `clock` gives the time for t=/x= checks and for the cache; `allow_sha1` turns rsa-sha1
    from a policy result into pass (RFC 8301 forbids it by default).
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        clock: Callable[[], float] = time.time,
        max_signatures: int = MAX_SIGNATURES,
        allow_sha1: bool = False,
        min_rsa_bits: int = MIN_RSA_BITS,
        max_clock_skew: int = MAX_CLOCK_SKEW,
        key_cache_size: int = 4096,
        key_cache_max_ttl: int = 3600,
    ) -> None:
        self.resolver = resolver
        self.clock = clock
        self.max_signatures = max_signatures
        self.allow_sha1 = allow_sha1
        self.min_rsa_bits = min_rsa_bits
        self.max_clock_skew = max_clock_skew
        self.key_cache_size = key_cache_size
        self.key_cache_max_ttl = key_cache_max_ttl
        self._keys: OrderedDict[tuple[str, str], tuple[float, _KeyOutcome]] = OrderedDict()

    def _cached_key(self, selector: str, domain: str, now: float) -> _KeyOutcome | None:
        entry = self._keys.get((selector, domain))
        if entry is None:
            return None
        if entry[0] > now:
            self._keys.move_to_end((selector, domain))
            return entry[1]
        del self._keys[selector, domain]
        return None

    async def key(self, selector: str, domain: str) -> KeyRecord | KeyFailure:
        """The key record of (selector, domain), from the cache while its TTL lasts."""
        cache_key = (selector, domain)
        now = self.clock()
        cached = self._cached_key(selector, domain, now)
        if cached is not None:
            return cached
        outcome = await fetch_key(self.resolver, selector, domain)
        ttl = min(outcome.ttl, self.key_cache_max_ttl)
        if ttl > 0 and not (isinstance(outcome, KeyFailure) and outcome.temporary):
            self._keys[cache_key] = (now + ttl, outcome)
            while len(self._keys) > self.key_cache_size:
                self._keys.popitem(last=False)
        return outcome

    async def verify(
        self, message: Message | bytes, *, body: BodyHasher | None = None
    ) -> list[DKIMResult]:
        """One result per DKIM-Signature field, top to bottom (empty: no signature).

        Bytes are taken as the on-wire form (CRLF); use `read_message` for files with bare LF.
        `body` shares the message's body hashes with other verifiers (ARC); it must hash
        `message.body`.
        """
        if isinstance(message, bytes):
            try:
                message = Message.from_bytes(message)
            except MessageError as exc:
                return [
                    DKIMResult(
                        DKIMStatus.PERMERROR,
                        f"unreadable message: {exc}",
                        DKIMReason.UNREADABLE_MESSAGE,
                    )
                ]
        fields = message.get_all("dkim-signature")
        if not fields:
            return []
        now = self.clock()
        outcomes: list[Signature | SignatureError | None] = []  # or why not (None: not checked)
        for n, sig_field in enumerate(fields):
            if n >= self.max_signatures:
                outcomes.append(None)
                continue
            try:
                signature = parse_signature(sig_field.value)
                self._check_time(signature, now)
            except SignatureError as exc:
                outcomes.append(exc)
                continue
            outcomes.append(signature)
        prefixes = header_b_prefixes(
            [
                o.b_text if isinstance(o, Signature) else _b_text(f.value)
                for f, o in zip(fields, outcomes, strict=True)
            ]
        )
        parsed: list[tuple[HeaderField, Signature | DKIMResult, str]] = []
        for sig_field, outcome, header_b in zip(fields, outcomes, prefixes, strict=True):
            if outcome is None:
                parsed.append((sig_field, self._unchecked(sig_field, header_b), header_b))
            elif isinstance(outcome, SignatureError):
                error = self._error_result(sig_field, str(outcome), outcome.code, header_b)
                parsed.append((sig_field, error, header_b))
            else:
                parsed.append((sig_field, outcome, header_b))
        keys: dict[tuple[str, str], KeyRecord | KeyFailure] = {}
        for _, sig, _ in parsed:
            if isinstance(sig, Signature) and (sig.selector, sig.domain) not in keys:
                cached = self._cached_key(sig.selector, sig.domain, now)
                if cached is not None:
                    keys[sig.selector, sig.domain] = cached
                else:
                    keys.setdefault((sig.selector, sig.domain), _MISSING)
        wanted = [k for k, v in keys.items() if v is _MISSING]
        if len(wanted) == 1:  # the usual case: one key, no task to gather
            keys[wanted[0]] = await self.key(*wanted[0])
        elif wanted:  # RFC 6376 §6.1.2: fetch every missing key at once
            fetched = await asyncio.gather(*(self.key(sel, dom) for sel, dom in wanted))
            keys.update(zip(wanted, fetched, strict=True))
        hasher = body if body is not None else BodyHasher(message.body)
        return [
            outcome
            if isinstance(outcome, DKIMResult)
            else self._check(
                message,
                sig_field,
                outcome,
                keys[outcome.selector, outcome.domain],
                hasher,
                header_b,
            )
            for sig_field, outcome, header_b in parsed
        ]

    def _check_time(self, signature: Signature, now: float) -> None:
        if signature.expiration is not None and signature.expiration < now:  # §6.1.1
            raise SignatureError(
                f"signature expired (x={signature.expiration})", DKIMReason.EXPIRED
            )
        if signature.timestamp is not None and signature.timestamp > now + self.max_clock_skew:
            raise SignatureError(
                f"signature timestamp t={signature.timestamp} is in the future",
                DKIMReason.FUTURE_TIMESTAMP,
            )

    def _error_result(
        self, sig_field: HeaderField, reason: str, code: DKIMReason, header_b: str
    ) -> DKIMResult:
        tags = loose_tags(sig_field.value)
        return DKIMResult(
            DKIMStatus.PERMERROR,
            reason,
            code,
            domain=tags.get("d", "").lower(),
            selector=tags.get("s", "").lower(),
            algorithm=tags.get("a", "").lower(),
            signature_b=tags.get("b", ""),
            header_b=header_b,
            identity=tags.get("i", ""),
        )

    def _unchecked(self, sig_field: HeaderField, header_b: str) -> DKIMResult:
        result = self._error_result(
            sig_field,
            f"not checked: only the first {self.max_signatures} signatures are",
            DKIMReason.NOT_CHECKED,
            header_b,
        )
        return replace(result, result=DKIMStatus.NEUTRAL)

    def _check(
        self,
        message: Message,
        sig_field: HeaderField,
        sig: Signature,
        key: KeyRecord | KeyFailure,
        hasher: BodyHasher,
        header_b: str,
    ) -> DKIMResult:
        def result(
            status: DKIMStatus,
            reason: str,
            code: DKIMReason,
            *,
            key_bits: int | None = None,
            testing: bool = False,
            body_length_unsigned: int | None = None,
            warnings: tuple[str, ...] = (),
        ) -> DKIMResult:
            return DKIMResult(
                status,
                reason,
                code,
                domain=sig.domain,
                selector=sig.selector,
                algorithm=sig.algorithm,
                key_bits=key_bits,
                header_b=header_b,
                signature_b=sig.b_text,
                identity=sig.identity,
                canonicalization=sig.canonicalization,
                signed_headers=sig.signed_headers,
                timestamp=sig.timestamp,
                expiration=sig.expiration,
                body_length=sig.length,
                body_length_unsigned=body_length_unsigned,
                testing=testing,
                warnings=warnings,
            )

        if isinstance(key, KeyFailure):
            status = DKIMStatus.TEMPERROR if key.temporary else DKIMStatus.PERMERROR
            return result(status, key.reason, key.code)
        bits = key.key_bits
        if key.revoked:
            return result(DKIMStatus.PERMERROR, "key revoked (empty p=)", DKIMReason.KEY_REVOKED)
        if key.key_type is not sig.algorithm.key_type:  # RFC 6376 §3.6.1 k=
            return result(
                DKIMStatus.PERMERROR,
                f"key type {key.key_type} does not match a={sig.algorithm}",
                DKIMReason.KEY_TYPE_MISMATCH,
                key_bits=bits,
            )
        if not key.allows_hash(sig.algorithm.hash_name):
            return result(
                DKIMStatus.PERMERROR,
                f"key record h= does not allow {sig.algorithm.hash_name}",
                DKIMReason.HASH_NOT_ALLOWED,
                key_bits=bits,
            )
        if not key.allows_email():
            return result(
                DKIMStatus.PERMERROR,
                f"key record s={':'.join(key.service_types)} is not for email",
                DKIMReason.KEY_NOT_FOR_EMAIL,
                key_bits=bits,
            )
        if key.strict_identity and sig.identity.rpartition("@")[2] != sig.domain:
            return result(
                DKIMStatus.PERMERROR,
                "key record t=s requires the i= domain to equal d=",
                DKIMReason.IDENTITY_MISMATCH,
                key_bits=bits,
            )
        testing = key.testing
        if key.key_type == "rsa" and bits < self.min_rsa_bits:  # RFC 8301 §3.2
            return result(
                DKIMStatus.FAIL,
                f"RSA key of {bits} bits is under {self.min_rsa_bits} (RFC 8301)",
                DKIMReason.KEY_TOO_SHORT,
                key_bits=bits,
                testing=testing,
            )
        relaxed_body = sig.body_canon is _RELAXED
        unsigned: int | None = None
        warnings: list[str] = []
        if sig.length is not None:
            available = hasher.length(relaxed_body)
            if sig.length > available:
                return result(
                    DKIMStatus.FAIL,
                    f"l={sig.length} is longer than the canonical body ({available} bytes)",
                    DKIMReason.LENGTH_EXCEEDS_BODY,
                    key_bits=bits,
                    testing=testing,
                )
            unsigned = available - sig.length
            warnings.append(f"l= used: {unsigned} body bytes are not covered by the signature")
        if hasher.digest(relaxed_body, sig.algorithm.hash_name, sig.length) != sig.body_hash:
            return result(
                DKIMStatus.FAIL,
                "body hash did not verify",
                DKIMReason.BODY_HASH_MISMATCH,
                key_bits=bits,
                testing=testing,
                body_length_unsigned=unsigned,
            )
        data = header_hash_input(
            message, sig.signed_headers, sig.header_canon is _RELAXED, sig_field
        )
        assert key.public_key is not None
        if not verify_data(key.public_key, sig.algorithm, data, sig.signature):
            return result(
                DKIMStatus.FAIL,
                "signature did not verify",
                DKIMReason.SIGNATURE_MISMATCH,
                key_bits=bits,
                testing=testing,
                body_length_unsigned=unsigned,
            )
        if testing:
            warnings.append("key in testing mode (t=y)")
        status, reason, code = _PASS, "signature verified", _VERIFIED
        if sig.algorithm is _RSA_SHA1 and not self.allow_sha1:  # RFC 8301 §3.1
            status, reason = DKIMStatus.POLICY, "rsa-sha1 is not acceptable (RFC 8301)"
            code = DKIMReason.SHA1_FORBIDDEN
        if warnings:
            reason += "; " + "; ".join(warnings)
        return result(
            status,
            reason,
            code,
            key_bits=bits,
            testing=testing,
            body_length_unsigned=unsigned,
            warnings=tuple(warnings),
        )
