"""ARC chain validation (RFC 8617 §5.2).

`ARCVerifier(resolver).verify(message)` returns an `ARCResult`: the chain validation status
(none, pass, fail) with the reason for a fail, the oldest instance whose ARC-Message-Signature
still verifies (``header.oldest-pass``), and per-set details (who sealed and signed, what each
ARC-Authentication-Results says). It never raises for a protocol outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from mailwarden.authres import AuthenticationResults, Property, ResInfo
from mailwarden.dkim import (
    Algorithm,
    BodyHasher,
    Canon,
    KeyFailure,
    KeyRecord,
    PublicKey,
    canonicalize_header,
    fetch_key,
    header_hash_input,
    strip_tag_value,
    verify_data,
)
from mailwarden.dns import Resolver
from mailwarden.frozen import quick_init
from mailwarden.message import Message, MessageError

from .model import (
    ARCAuthenticationResults,
    ARCError,
    ARCMessageSignature,
    ARCSeal,
    ARCSetFields,
    ARCStatus,
    collect_sets,
    has_arc_fields,
    parse_aar,
    parse_message_signature,
    parse_seal,
)

__all__ = [
    "MIN_RSA_BITS",
    "ARCReason",
    "ARCResult",
    "ARCSetResult",
    "ARCVerifier",
    "KeySource",
    "seal_input",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MIN_RSA_BITS = 1024  # RFC 8301 §3.2, as for DKIM (the suite's as_fields_b_512 fails)

_KeyOutcome = KeyRecord | KeyFailure


class KeySource(Protocol):
    """Where key records come from: `(selector, domain) -> KeyRecord | KeyFailure`.

    `DKIMVerifier.key` fits, so ARC can share the DKIM verifier's key cache.
    """

    def __call__(self, selector: str, domain: str) -> Awaitable[_KeyOutcome]: ...


@quick_init
@dataclass(frozen=True, slots=True)
class ARCSetResult:
    """What one ARC set says and how its two signatures fared.

    `ams_result` / `seal_result` are pass or fail, or None when validation stopped before
    checking them (RFC 8617 §5.2 stops at the first failure; older AMSs are checked only as
    far as needed for oldest-pass).
    """

    instance: int
    seal_domain: str = ""  # AS d=
    seal_selector: str = ""  # AS s=
    seal_algorithm: str = ""
    cv: str = ""  # the AS cv= as written
    ams_domain: str = ""  # AMS d=
    ams_selector: str = ""  # AMS s=
    ams_algorithm: str = ""
    ams_result: ARCStatus | None = None
    ams_reason: str = ""
    seal_result: ARCStatus | None = None
    seal_reason: str = ""
    aar: ARCAuthenticationResults | None = None  # the sealer's ARC-Authentication-Results

    @property
    def authserv_id(self) -> str:
        return self.aar.parsed.authserv_id if self.aar and self.aar.parsed else ""

    @property
    def auth_results(self) -> AuthenticationResults | None:
        """The AAR payload as parsed Authentication-Results (None: absent or unparsable)."""
        return self.aar.parsed if self.aar else None


class ARCReason(StrEnum):
    """Why a chain validated or not, by the steps of RFC 8617 §5.2 (beside the words)."""

    VALIDATED = "validated"  # every step passed
    NO_SETS = "no-sets"  # step 1: no ARC set: none
    UNREADABLE_MESSAGE = "unreadable-message"  # the message itself could not be split
    BROKEN_SETS = "broken-sets"  # steps 1, 3.1, 3.2: sets missing, duplicated, incomplete
    SEAL_SYNTAX = "seal-syntax"  # an ARC-Seal that does not parse (§4.1.3)
    CHAIN_FAILED = "chain-failed"  # step 2: the latest seal says cv=fail
    CV_MISMATCH = "cv-mismatch"  # step 3.3: cv=none only on i=1, pass on every later one
    AMS_INVALID = "ams-invalid"  # step 4: the latest AMS does not parse or verify
    SEAL_INVALID = "seal-invalid"  # step 6: an ARC-Seal does not verify


@quick_init
@dataclass(frozen=True, slots=True)
class ARCResult:
    """The outcome of validating a message's ARC chain.

    `instances` is N, the number of sets (0 for none, or when the sets could not be told
    apart); `oldest_pass` the RFC 8617 §5.2 step 5
    value (0: every AMS verifies; M: AMS M-1 fails and M..N verify; None: not determined,
    because the chain failed before that step or there is none). `sets` are in instance order.
    """

    result: ARCStatus
    reason: str
    reason_code: ARCReason
    instances: int = 0
    oldest_pass: int | None = None
    sets: tuple[ARCSetResult, ...] = field(default=())

    @property
    def latest(self) -> ARCSetResult | None:
        """The most recent set (highest instance)."""
        return self.sets[-1] if self.sets else None

    def resinfo(self, *, remote_ip: str | None = None) -> ResInfo:
        """This result as an RFC 8601 resinfo (``arc=pass header.oldest-pass=0``).

        RFC 8617 §6 registers header.oldest-pass and smtp.remote-ip for the arc method.
        """
        comments: tuple[str, ...] = ()
        if self.result is ARCStatus.FAIL:
            comments = (_CONTROL.sub(" ", self.reason),)
        elif self.result is ARCStatus.PASS and self.latest is not None:
            comments = (f"i={self.instances} d={self.latest.seal_domain}",)
        props: list[Property] = []
        if self.oldest_pass is not None:
            props.append(Property("header", "oldest-pass", str(self.oldest_pass)))
        if remote_ip:
            props.append(Property("smtp", "remote-ip", remote_ip))
        return ResInfo("arc", self.result.value, comments=comments, properties=tuple(props))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this result, for every command that shows one (`sets` is the
        number of sets, as `instances`)."""
        return {
            "result": self.result.value,
            "reason": self.reason,
            "reason_code": self.reason_code.value,
            "instances": self.instances,
            "sets": self.instances,
            "oldest_pass": self.oldest_pass,
        }


# RFC 8617 §5.2 step 1's verdict, most messages': one frozen result shared (built per message,
# it cost its dataclass __init__ every time)
_NO_SETS = ARCResult(ARCStatus.NONE, "no ARC sets", ARCReason.NO_SETS)


def seal_input(sets: list[ARCSetFields]) -> bytes:
    """What the last ARC-Seal of `sets` signs (RFC 8617 §5.1.1): every set's AAR, AMS and AS in
    instance order, relaxed header canonicalization (§5.1.1.3: no body, no other choice), the
    last AS with its b= value emptied and no final CRLF."""
    parts: list[bytes] = []
    for arc_set in sets:
        parts.append(canonicalize_header(arc_set.aar.name, arc_set.aar.value, True))
        parts.append(canonicalize_header(arc_set.ams.name, arc_set.ams.value, True))
        if arc_set is not sets[-1]:
            parts.append(canonicalize_header(arc_set.seal.name, arc_set.seal.value, True))
    last = sets[-1].seal
    parts.append(canonicalize_header(last.name, strip_tag_value(last.value), True, crlf=False))
    return b"".join(parts)


def _usable_key(key: _KeyOutcome, algorithm: Algorithm, min_rsa_bits: int) -> PublicKey | str:
    """The public key that can verify an `algorithm` signature, or why there is none."""
    if isinstance(key, KeyFailure):
        return ("temporary failure: " if key.temporary else "") + key.reason
    if key.public_key is None:
        return "key revoked (empty p=)"
    if key.key_type is not algorithm.key_type:
        return f"key type {key.key_type} does not match a={algorithm}"
    if not key.allows_hash(algorithm.hash_name):
        return f"key record h= does not allow {algorithm.hash_name}"
    if not key.allows_email():
        return "key record is not for email (s=)"
    if key.key_type == "rsa" and key.key_bits < min_rsa_bits:  # RFC 8301 §3.2
        return f"RSA key of {key.key_bits} bits is under {min_rsa_bits} (RFC 8301)"
    return key.public_key


class _Set:
    """Working state for one set while the chain is validated."""

    def __init__(self, fields: ARCSetFields) -> None:
        self.fields = fields
        self.seal: ARCSeal | None = None
        self.ams: ARCMessageSignature | None = None
        self.ams_error = ""
        self.aar: ARCAuthenticationResults | None = None
        self.ams_result: ARCStatus | None = None
        self.ams_reason = ""
        self.seal_result: ARCStatus | None = None
        self.seal_reason = ""

    def freeze(self) -> ARCSetResult:
        seal, ams = self.seal, self.ams
        return ARCSetResult(
            instance=self.fields.instance,
            seal_domain=seal.domain if seal else "",
            seal_selector=seal.selector if seal else "",
            seal_algorithm=seal.algorithm.value if seal else "",
            cv=seal.cv.value if seal else "",
            ams_domain=ams.domain if ams else "",
            ams_selector=ams.selector if ams else "",
            ams_algorithm=ams.algorithm.value if ams else "",
            ams_result=self.ams_result,
            ams_reason=self.ams_reason or self.ams_error,
            seal_result=self.seal_result,
            seal_reason=self.seal_reason,
            aar=self.aar,
        )


class ARCVerifier:
    """Validates ARC chains through a resolver (RFC 8617 §5.2).

    `clock` gives the time for an AMS x= (expiration); `key_source` replaces the plain
    `fetch_key` lookup (pass `DKIMVerifier(...).key` to share its key cache);
    `min_rsa_bits` is the RFC 8301 floor.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        clock: Callable[[], float] = time.time,
        key_source: KeySource | None = None,
        min_rsa_bits: int = MIN_RSA_BITS,
    ) -> None:
        self.resolver = resolver
        self.clock = clock
        self.key_source = key_source
        self.min_rsa_bits = min_rsa_bits

    async def _key(self, selector: str, domain: str) -> _KeyOutcome:
        if self.key_source is not None:
            return await self.key_source(selector, domain)
        return await fetch_key(self.resolver, selector, domain)

    async def verify(
        self, message: Message | bytes, *, body: BodyHasher | None = None
    ) -> ARCResult:
        """The chain validation status of `message` (CRLF line endings expected); `body`
        shares the message's body hashes with DKIM (it must hash `message.body`)."""
        if isinstance(message, bytes):
            try:
                message = Message.from_bytes(message)
            except MessageError as exc:
                return ARCResult(
                    ARCStatus.FAIL, f"unreadable message: {exc}", ARCReason.UNREADABLE_MESSAGE
                )
        # RFC 8617 §5.2 step 1: no ARC set at all: none
        if not has_arc_fields(message):
            return _NO_SETS
        try:
            fields = collect_sets(message)
        except ARCError as exc:  # step 3.1 / 3.2 (and step 1's limit of 50)
            return ARCResult(ARCStatus.FAIL, str(exc), ARCReason.BROKEN_SETS)
        sets = [_Set(f) for f in fields]
        count = len(sets)

        def fail(reason: str, code: ARCReason, oldest_pass: int | None = None) -> ARCResult:
            frozen = tuple(s.freeze() for s in sets)
            return ARCResult(ARCStatus.FAIL, reason, code, count, oldest_pass, frozen)

        for s in sets:
            with contextlib.suppress(ARCError):  # collect_sets already read its i=
                s.aar = parse_aar(s.fields.aar.value)
            try:
                s.ams = parse_message_signature(s.fields.ams.value)
            except ARCError as exc:
                s.ams_error = str(exc)
        seals: list[ARCSeal] = []
        try:
            for s in sets:
                s.seal = parse_seal(s.fields.seal.value)
                seals.append(s.seal)
        except ARCError as exc:
            return fail(str(exc), ARCReason.SEAL_SYNTAX)
        latest = sets[-1]
        # step 2: the most recent sealer already found the chain broken
        if seals[-1].cv is ARCStatus.FAIL:
            return fail(
                f"ARC-Seal i={count} says cv=fail: the chain was already broken",
                ARCReason.CHAIN_FAILED,
            )
        # step 3.3: cv=none on instance 1 only, pass on every later one
        for seal in seals:
            wanted = ARCStatus.NONE if seal.instance == 1 else ARCStatus.PASS
            if seal.cv is not wanted:
                return fail(
                    f"ARC-Seal i={seal.instance} has cv={seal.cv}, expected cv={wanted}",
                    ARCReason.CV_MISMATCH,
                )
        if latest.ams is None:
            latest.ams_result = ARCStatus.FAIL
            return fail(latest.ams_error, ARCReason.AMS_INVALID)

        wanted_keys: dict[tuple[str, str], None] = {}
        for s, seal in zip(sets, seals, strict=True):
            if s.ams is not None:
                wanted_keys[(s.ams.selector, s.ams.domain)] = None
            wanted_keys[(seal.selector, seal.domain)] = None
        pairs = list(wanted_keys)
        if len(pairs) == 1:  # one key signs and seals (the usual case): no task to gather
            outcomes = [await self._key(*pairs[0])]
        else:
            outcomes = list(await asyncio.gather(*(self._key(sel, dom) for sel, dom in pairs)))
        keys = dict(zip(pairs, outcomes, strict=True))
        hasher = body if body is not None else BodyHasher(message.body)
        now = self.clock()

        # step 4: the most recent AMS must verify
        problem = self._check_ams(message, latest, latest.ams, keys, hasher, now)
        if problem is not None:
            return fail(
                f"ARC-Message-Signature i={count} did not verify: {problem}",
                ARCReason.AMS_INVALID,
            )
        # step 5: oldest-pass, walking down until an AMS fails
        oldest_pass = 0
        for s in reversed(sets[:-1]):
            if s.ams is None:
                s.ams_result = ARCStatus.FAIL
                oldest_pass = s.fields.instance + 1
                break
            if self._check_ams(message, s, s.ams, keys, hasher, now) is not None:
                oldest_pass = s.fields.instance + 1
                break
        # step 6: every seal, newest first
        for n in range(count, 0, -1):
            problem = self._check_seal(sets[:n], seals[n - 1], keys)
            if problem is not None:
                return fail(
                    f"ARC-Seal i={n} did not verify: {problem}", ARCReason.SEAL_INVALID, oldest_pass
                )
        frozen = tuple(s.freeze() for s in sets)
        reason = f"{count} ARC set{'s' * (count > 1)} validated"
        return ARCResult(ARCStatus.PASS, reason, ARCReason.VALIDATED, count, oldest_pass, frozen)

    def _check_ams(
        self,
        message: Message,
        s: _Set,
        ams: ARCMessageSignature,
        keys: dict[tuple[str, str], _KeyOutcome],
        hasher: BodyHasher,
        now: float,
    ) -> str | None:
        """Verify `ams`, the parsed ARC-Message-Signature of set `s` (RFC 8617 §5.2 step 4)."""
        problem = self._ams_problem(message, s, ams, keys[(ams.selector, ams.domain)], hasher, now)
        s.ams_result = ARCStatus.FAIL if problem else ARCStatus.PASS
        s.ams_reason = problem or "signature verified"
        return problem

    def _ams_problem(
        self,
        message: Message,
        s: _Set,
        ams: ARCMessageSignature,
        key: _KeyOutcome,
        hasher: BodyHasher,
        now: float,
    ) -> str | None:
        if ams.expiration is not None and ams.expiration < now:
            return f"signature expired (x={ams.expiration})"
        public_key = _usable_key(key, ams.algorithm, self.min_rsa_bits)
        if isinstance(public_key, str):
            return public_key
        relaxed_body = ams.body_canon is Canon.RELAXED
        if ams.length is not None and ams.length > hasher.length(relaxed_body):
            return f"l={ams.length} is longer than the canonical body"
        digest = hasher.digest(relaxed_body, ams.algorithm.hash_name, ams.length)
        if digest != ams.body_hash:
            return "body hash did not verify"
        # h= selects bottom-up over the whole header, as in DKIM (RFC 6376 §5.4.2): sets added
        # later sit above, so an older AMS sees the fields it signed (the suite relies on it).
        relaxed = ams.header_canon is Canon.RELAXED
        data = header_hash_input(message, ams.signed_headers, relaxed, s.fields.ams)
        if not verify_data(public_key, ams.algorithm, data, ams.signature):
            return "signature did not verify"
        return None

    def _check_seal(
        self, sets: list[_Set], seal: ARCSeal, keys: dict[tuple[str, str], _KeyOutcome]
    ) -> str | None:
        """Verify `seal`, the ARC-Seal of the last of `sets` (RFC 8617 §5.2 step 6)."""
        key = keys[(seal.selector, seal.domain)]
        public_key = _usable_key(key, seal.algorithm, self.min_rsa_bits)
        problem = public_key if isinstance(public_key, str) else None
        if not isinstance(public_key, str):
            data = seal_input([x.fields for x in sets])
            if not verify_data(public_key, seal.algorithm, data, seal.signature):
                problem = "signature did not verify"
        sets[-1].seal_result = ARCStatus.FAIL if problem else ARCStatus.PASS
        sets[-1].seal_reason = problem or "seal verified"
        return problem
