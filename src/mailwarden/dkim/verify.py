"""DKIM verification (RFC 6376 §6, RFC 8301, RFC 8463).

`parse_signature` turns a DKIM-Signature value into a `Signature` (SignatureError with the
permerror reason otherwise); `DKIMVerifier.verify(message)` checks every signature of a
message and returns one `DKIMResult` each, in the order the fields appear. It never raises for
a protocol outcome.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from mailwarden.dns import Resolver, to_ascii
from mailwarden.message import HeaderField, Message, MessageError

from .canon import BodyHasher, Canon, header_hash_input, parse_canonicalization
from .crypto import Algorithm, verify_data
from .key import KeyFailure, KeyRecord, fetch_key
from .tags import TagListError, parse_tag_list

__all__ = [
    "DKIMResult",
    "DKIMStatus",
    "DKIMVerifier",
    "Signature",
    "SignatureError",
    "header_b_prefixes",
    "parse_signature",
]

MAX_SIGNATURES = 10  # signatures checked per message; the rest are reported, not checked
MIN_RSA_BITS = 1024  # RFC 8301 §3.2
MAX_CLOCK_SKEW = 300  # seconds a t= may lie in the future
HEADER_B_MIN = 8  # RFC 6008 §4: header.b carries at least the first 8 characters of b=
REQUIRED_TAGS = ("v", "a", "b", "bh", "d", "h", "s")  # RFC 6376 §3.5
_H_LIST = re.compile(r"[\x21-\x39\x3b-\x7e]+(?::[\x21-\x39\x3b-\x7e]+)*")
# LDH labels (underscore allowed, as in selectors), 1..63 octets each (RFC 6376 §3.5 d=, s=)
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DIGITS = re.compile(r"[0-9]{1,76}")


class DKIMStatus(StrEnum):
    """RFC 8601 §2.7.1 results of one signature (none: the message has no signature)."""

    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"
    POLICY = "policy"
    NONE = "none"


_ALGORITHMS = {a.value: a for a in Algorithm}


class SignatureError(ValueError):
    """A DKIM-Signature that cannot be verified; the message is the permerror reason."""


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


@dataclass(frozen=True, slots=True)
class DKIMResult:
    """The outcome of one DKIM-Signature, with what Authentication-Results needs."""

    result: DKIMStatus
    reason: str
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

    @property
    def header_d(self) -> str:
        return self.domain

    @property
    def header_s(self) -> str:
        return self.selector

    @property
    def header_a(self) -> str:
        return self.algorithm

    @property
    def header_i(self) -> str:
        return self.identity

    def auth_results_clause(self) -> str:
        """This result as an RFC 8601 resinfo: `dkim=pass (2048-bit key) header.d=...`."""
        parts = [f"dkim={self.result}"]
        if self.key_bits:
            parts.append(f"({self.key_bits}-bit key)")
        elif self.reason and self.result is not DKIMStatus.PASS:
            parts.append("(" + self.reason.replace("(", "[").replace(")", "]") + ")")
        for prop, value in (
            ("header.d", self.domain),
            ("header.i", self.identity),
            ("header.s", self.selector),
            ("header.a", self.algorithm),
            ("header.b", self.header_b),
        ):
            if value:
                parts.append(f"{prop}={_ar_value(value)}")
        return " ".join(parts)


def _ar_value(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b64(value: str, tag: str) -> bytes:
    text = "".join(value.split())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{tag}= is not valid base64") from None
    if not data:
        raise SignatureError(f"{tag}= is empty")
    return data


def _number(tags: dict[str, str], tag: str) -> int | None:
    if tag not in tags:
        return None
    value = tags[tag]
    if not _DIGITS.fullmatch(value):
        raise SignatureError(f"{tag}={value!r} is not a decimal number")
    return int(value)


def _domain(value: str, what: str) -> str:
    name = value.strip().lower()
    if not name.isascii():
        try:
            name = to_ascii(name)
        except ValueError:
            raise SignatureError(f"{what} {value!r} is not a valid domain name") from None
    if len(name) > 253 or not _DOMAIN.fullmatch(name):
        raise SignatureError(f"{what} {value!r} is not a valid domain name")
    return name


def parse_signature(value: bytes | str) -> Signature:
    """Parse and check a DKIM-Signature value (RFC 6376 §3.5, §6.1.1), clock aside."""
    try:
        tags = parse_tag_list(value)
    except TagListError as exc:
        raise SignatureError(f"malformed signature: {exc}") from None
    missing = [tag for tag in REQUIRED_TAGS if tag not in tags]
    if missing:
        raise SignatureError(
            f"signature lacks required tag{'s' * (len(missing) > 1)} "
            + ", ".join(f"{t}=" for t in missing)
        )
    if tags["v"] != "1":
        raise SignatureError(f"unsupported signature version v={tags['v']}")
    algorithm = _ALGORITHMS.get(tags["a"].lower())
    if algorithm is None:
        raise SignatureError(f"unsupported algorithm a={tags['a']}")
    try:
        header_canon, body_canon = parse_canonicalization(tags.get("c", "simple/simple"))
    except ValueError as exc:
        raise SignatureError(str(exc)) from None
    domain = _domain(tags["d"], "d=")
    selector_text = "".join(tags["s"].split()).lower()
    if not _DOMAIN.fullmatch(selector_text):
        raise SignatureError(f"s={tags['s']!r} is not a valid selector")
    h_text = tags["h"].lower()
    if " " in h_text or "\t" in h_text or "\n" in h_text:
        h_text = "".join(h_text.split())
    signed = tuple(h_text.split(":"))
    if not _H_LIST.fullmatch(h_text):
        bad = next((n for n in signed if not _H_LIST.fullmatch(n)), "")
        raise SignatureError(f"h= holds an invalid header field name {bad!r}")
    if "from" not in signed:
        raise SignatureError("From is not signed (h= must include it, RFC 6376 §5.4)")
    identity = tags.get("i", "@" + domain)
    local, at, i_domain = identity.rpartition("@")
    if not at:
        raise SignatureError(f"i={identity!r} has no '@'")
    i_domain = _domain(i_domain, "i= domain")
    if i_domain != domain and not i_domain.endswith("." + domain):  # RFC 6376 §6.1.1
        raise SignatureError(f"i= domain {i_domain} is not d= {domain} or a subdomain of it")
    if "q" in tags:
        methods = [m.strip(" \t\r\n").lower() for m in tags["q"].split(":")]
        if not any(m == "dns/txt" or m.startswith("dns/txt/") for m in methods):
            raise SignatureError(f"no supported query method in q={tags['q']}")
    timestamp = _number(tags, "t")
    expiration = _number(tags, "x")
    if timestamp is not None and expiration is not None and expiration < timestamp:
        raise SignatureError("x= (expiration) is before t= (signing time)")
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


def _loose_tags(value: bytes) -> dict[str, str]:
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


_KeyOutcome = KeyRecord | KeyFailure
_MISSING = KeyFailure("not fetched yet", temporary=True)


def _b_text(value: bytes) -> str:
    """The b= value of a signature that did not parse, whitespace removed ("" if none)."""
    return _loose_tags(value).get("b", "")


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

    async def verify(self, message: Message | bytes) -> list[DKIMResult]:
        """One result per DKIM-Signature field, top to bottom (empty: no signature).

        Bytes are taken as the on-wire form (CRLF); use `read_message` for files with bare LF.
        """
        if isinstance(message, bytes):
            try:
                message = Message.from_bytes(message)
            except MessageError as exc:
                return [DKIMResult(DKIMStatus.PERMERROR, f"unreadable message: {exc}")]
        fields = message.get_all("dkim-signature")
        if not fields:
            return []
        now = self.clock()
        outcomes: list[Signature | str | None] = []  # parsed, or why not (None: not checked)
        for n, sig_field in enumerate(fields):
            if n >= self.max_signatures:
                outcomes.append(None)
                continue
            try:
                signature = parse_signature(sig_field.value)
                self._check_time(signature, now)
            except SignatureError as exc:
                outcomes.append(str(exc))
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
            elif isinstance(outcome, str):
                error = self._error_result(sig_field, outcome, header_b)
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
        if wanted:  # RFC 6376 §6.1.2: fetch every missing key at once
            fetched = await asyncio.gather(*(self.key(sel, dom) for sel, dom in wanted))
            keys.update(zip(wanted, fetched, strict=True))
        hasher = BodyHasher(message.body)
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
            raise SignatureError(f"signature expired (x={signature.expiration})")
        if signature.timestamp is not None and signature.timestamp > now + self.max_clock_skew:
            raise SignatureError(f"signature timestamp t={signature.timestamp} is in the future")

    def _error_result(self, sig_field: HeaderField, reason: str, header_b: str) -> DKIMResult:
        tags = _loose_tags(sig_field.value)
        return DKIMResult(
            DKIMStatus.PERMERROR,
            reason,
            domain=tags.get("d", "").lower(),
            selector=tags.get("s", "").lower(),
            algorithm=tags.get("a", "").lower(),
            signature_b=tags.get("b", ""),
            header_b=header_b,
            identity=tags.get("i", ""),
        )

    def _unchecked(self, sig_field: HeaderField, header_b: str) -> DKIMResult:
        result = self._error_result(
            sig_field, f"not checked: only the first {self.max_signatures} signatures are", header_b
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
            *,
            key_bits: int | None = None,
            testing: bool = False,
            body_length_unsigned: int | None = None,
            warnings: tuple[str, ...] = (),
        ) -> DKIMResult:
            return DKIMResult(
                status,
                reason,
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
            return result(status, key.reason)
        bits = key.key_bits
        if key.revoked:
            return result(DKIMStatus.PERMERROR, "key revoked (empty p=)")
        if key.key_type is not sig.algorithm.key_type:  # RFC 6376 §3.6.1 k=
            return result(
                DKIMStatus.PERMERROR,
                f"key type {key.key_type} does not match a={sig.algorithm}",
                key_bits=bits,
            )
        if not key.allows_hash(sig.algorithm.hash_name):
            return result(
                DKIMStatus.PERMERROR,
                f"key record h= does not allow {sig.algorithm.hash_name}",
                key_bits=bits,
            )
        if not key.allows_email():
            return result(
                DKIMStatus.PERMERROR,
                f"key record s={':'.join(key.service_types)} is not for email",
                key_bits=bits,
            )
        if key.strict_identity and sig.identity.rpartition("@")[2] != sig.domain:
            return result(
                DKIMStatus.PERMERROR,
                "key record t=s requires the i= domain to equal d=",
                key_bits=bits,
            )
        testing = key.testing
        if key.key_type == "rsa" and bits < self.min_rsa_bits:  # RFC 8301 §3.2
            return result(
                DKIMStatus.FAIL,
                f"RSA key of {bits} bits is under {self.min_rsa_bits} (RFC 8301)",
                key_bits=bits,
                testing=testing,
            )
        relaxed_body = sig.body_canon is Canon.RELAXED
        unsigned: int | None = None
        warnings: list[str] = []
        if sig.length is not None:
            available = hasher.length(relaxed_body)
            if sig.length > available:
                return result(
                    DKIMStatus.FAIL,
                    f"l={sig.length} is longer than the canonical body ({available} bytes)",
                    key_bits=bits,
                    testing=testing,
                )
            unsigned = available - sig.length
            warnings.append(f"l= used: {unsigned} body bytes are not covered by the signature")
        if hasher.digest(relaxed_body, sig.algorithm.hash_name, sig.length) != sig.body_hash:
            return result(
                DKIMStatus.FAIL,
                "body hash did not verify",
                key_bits=bits,
                testing=testing,
                body_length_unsigned=unsigned,
            )
        data = header_hash_input(
            message, sig.signed_headers, sig.header_canon is Canon.RELAXED, sig_field
        )
        assert key.public_key is not None
        if not verify_data(key.public_key, sig.algorithm, data, sig.signature):
            return result(
                DKIMStatus.FAIL,
                "signature did not verify",
                key_bits=bits,
                testing=testing,
                body_length_unsigned=unsigned,
            )
        if testing:
            warnings.append("key in testing mode (t=y)")
        status, reason = DKIMStatus.PASS, "signature verified"
        if sig.algorithm is Algorithm.RSA_SHA1 and not self.allow_sha1:  # RFC 8301 §3.1
            status, reason = DKIMStatus.POLICY, "rsa-sha1 is not acceptable (RFC 8301)"
        if warnings:
            reason += "; " + "; ".join(warnings)
        return result(
            status,
            reason,
            key_bits=bits,
            testing=testing,
            body_length_unsigned=unsigned,
            warnings=tuple(warnings),
        )
