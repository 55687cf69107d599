"""ARC header fields (RFC 8617 §4) as data: parsing each field and grouping them into sets.

`parse_seal`, `parse_message_signature` and `parse_aar` read one field value each;
`collect_sets` groups a message's ARC fields into `ARCSetFields` by instance and applies the
structural rules of RFC 8617 §5.2 step 3. Every malformed input raises `ARCError` (a
ValueError) whose message is the reason a validator reports; nothing else is raised.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.authres import AuthenticationResults, ParseError, parse_authentication_results
from mailwarden.dkim import (
    Algorithm,
    Canon,
    TagListError,
    parse_canonicalization,
    parse_tag_list,
)
from mailwarden.dns import is_domain_name, to_ascii
from mailwarden.frozen import quick_init
from mailwarden.message import HeaderField, Message

__all__ = [
    "AAR_NAME",
    "AMS_NAME",
    "ARC_FIELD_NAMES",
    "AS_NAME",
    "MAX_INSTANCE",
    "ARCAuthenticationResults",
    "ARCError",
    "ARCMessageSignature",
    "ARCSeal",
    "ARCSetFields",
    "ARCStatus",
    "collect_sets",
    "has_arc_fields",
    "highest_instance",
    "parse_aar",
    "parse_message_signature",
    "parse_seal",
]

MAX_INSTANCE = 50  # RFC 8617 §4.2.1: i= is 1..50
AAR_NAME = "ARC-Authentication-Results"
AMS_NAME = "ARC-Message-Signature"
AS_NAME = "ARC-Seal"
ARC_FIELD_NAMES = (AAR_NAME.lower(), AMS_NAME.lower(), AS_NAME.lower())
_ARC_NAMES = frozenset(ARC_FIELD_NAMES)
# RFC 8617 §4.1: ARC uses the DKIM algorithms; RFC 8301 §3.1 bars rsa-sha1 everywhere.
ALGORITHMS = (Algorithm.RSA_SHA256, Algorithm.ED25519_SHA256)

_DIGITS = re.compile(r"[0-9]{1,76}")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_AAR_INSTANCE = re.compile(r"[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]+)[ \t\r\n]*;")
_LOOSE_INSTANCE = re.compile(r"(?:^|;)[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]{1,9})")


class ARCStatus(StrEnum):
    """Chain validation status (RFC 8617 §4.4): the cv= values and the arc= result."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"


class ARCError(ValueError):
    """A malformed ARC header field or chain; the message is the reason for cv=fail."""


@quick_init
@dataclass(frozen=True, slots=True)
class ARCSeal:
    """A parsed ARC-Seal (RFC 8617 §4.1.3)."""

    instance: int
    algorithm: Algorithm
    signature: bytes  # b=, decoded
    domain: str  # d=, lower case, A-labels
    selector: str  # s=, lower case
    cv: ARCStatus
    timestamp: int | None = None  # t=
    b_text: str = ""  # b= as written, whitespace removed


@quick_init
@dataclass(frozen=True, slots=True)
class ARCMessageSignature:
    """A parsed ARC-Message-Signature (RFC 8617 §4.1.2): a DKIM signature without v=, whose
    i= is the instance."""

    instance: int
    algorithm: Algorithm
    signature: bytes
    body_hash: bytes
    header_canon: Canon
    body_canon: Canon
    domain: str
    selector: str
    signed_headers: tuple[str, ...]  # h=, lower case, in order (may be empty)
    timestamp: int | None = None
    expiration: int | None = None  # x=
    length: int | None = None  # l=
    b_text: str = ""


@dataclass(frozen=True)
class ARCAuthenticationResults:
    """An ARC-Authentication-Results (RFC 8617 §4.1.1): ``i=N;`` and an A-R payload.

    `payload` is the text after ``i=N;`` (unfolded, outer whitespace stripped); `parsed` its
    RFC 8601 reading (computed on first use), or None when it does not parse: that alone does
    not break the chain, since validators do not interpret the AAR (RFC 8617 §5.2).
    """

    instance: int
    payload: str

    @functools.cached_property
    def parsed(self) -> AuthenticationResults | None:
        try:
            return parse_authentication_results(self.payload)
        except (ParseError, ValueError):
            return None


@quick_init
@dataclass(frozen=True, slots=True)
class ARCSetFields:
    """The three header fields of one ARC set (RFC 8617 §4.1), exactly as received."""

    instance: int
    aar: HeaderField
    ams: HeaderField
    seal: HeaderField


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _tags(value: bytes | str, what: str) -> dict[str, str]:
    try:
        return parse_tag_list(value)
    except TagListError as exc:
        raise ARCError(f"{what}: malformed tag list: {exc}") from None


def _instance(text: str, what: str) -> int:
    # RFC 8617 §4.2.1: i= is a decimal from 1 to 50
    if not _DIGITS.fullmatch(text):
        raise ARCError(f"{what}: i={text!r} is not an instance number")
    number = int(text)
    if not 1 <= number <= MAX_INSTANCE:
        raise ARCError(f"{what}: i={number} is outside 1..{MAX_INSTANCE}")
    return number


def _require(tags: dict[str, str], names: tuple[str, ...], what: str) -> None:
    missing = [name for name in names if name not in tags]
    if missing:
        listed = ", ".join(f"{m}=" for m in missing)
        raise ARCError(f"{what}: missing required tag{'s' * (len(missing) > 1)} {listed}")


def _algorithm(value: str, what: str) -> Algorithm:
    try:
        algorithm = Algorithm(value)
    except ValueError:
        raise ARCError(f"{what}: unsupported algorithm a={value!r}") from None
    if algorithm not in ALGORITHMS:  # RFC 8301 §3.1
        raise ARCError(f"{what}: a={value} is not acceptable (RFC 8301)")
    return algorithm


def _b64(value: str, tag: str, what: str) -> bytes:
    text = "".join(value.split())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ARCError(f"{what}: {tag}= is not valid base64") from None
    if not data:
        raise ARCError(f"{what}: {tag}= is empty")
    return data


def _domain(value: str, tag: str, what: str) -> str:
    name = value.strip().lower()
    try:
        name = to_ascii(name)
    except ValueError:
        raise ARCError(f"{what}: {tag}={value!r} is not a domain name") from None
    if not name or name.endswith(".") or not is_domain_name(name):
        raise ARCError(f"{what}: {tag}={value!r} is not a domain name")
    return name


def _number(tags: dict[str, str], tag: str, what: str) -> int | None:
    if tag not in tags:
        return None
    if not _DIGITS.fullmatch(tags[tag]):
        raise ARCError(f"{what}: {tag}={tags[tag]!r} is not a decimal number")
    return int(tags[tag])


def parse_seal(value: bytes | str) -> ARCSeal:
    """Parse an ARC-Seal value (RFC 8617 §4.1.3); ARCError when malformed.

    Required tags: a, b, cv, d, i, s (t= is optional in the suite and in practice); unknown
    tags are ignored; an h= tag is an error, since the seal's coverage is fixed by §5.1.1.
    """
    what = AS_NAME
    tags = _tags(value, what)
    _require(tags, ("i", "a", "b", "cv", "d", "s"), what)
    instance = _instance(tags["i"], what)
    what = f"{AS_NAME} i={instance}"
    if "h" in tags:
        raise ARCError(f"{what}: h= is not allowed in an ARC-Seal")
    try:
        cv = ARCStatus(tags["cv"])
    except ValueError:
        raise ARCError(f"{what}: cv={tags['cv']!r} is not none, pass or fail") from None
    return ARCSeal(
        instance=instance,
        algorithm=_algorithm(tags["a"], what),
        signature=_b64(tags["b"], "b", what),
        domain=_domain(tags["d"], "d", what),
        selector=_domain(tags["s"], "s", what),
        cv=cv,
        timestamp=_number(tags, "t", what),
        b_text="".join(tags["b"].split()),
    )


def parse_message_signature(value: bytes | str) -> ARCMessageSignature:
    """Parse an ARC-Message-Signature value (RFC 8617 §4.1.2); ARCError when malformed.

    Like a DKIM-Signature (RFC 6376 §3.5) without v=; i= is the instance. h= may not name
    ARC-Seal (§4.1.2) and may be empty (the suite's ams_fields_h_empty passes).
    """
    what = AMS_NAME
    tags = _tags(value, what)
    _require(tags, ("i", "a", "b", "bh", "d", "h", "s"), what)
    instance = _instance(tags["i"], what)
    what = f"{AMS_NAME} i={instance}"
    try:  # no c=: relaxed/relaxed, what ARC sealers use (dkimpy; suite ams_fields_c_na)
        header_canon, body_canon = parse_canonicalization(tags.get("c", "relaxed/relaxed"))
    except ValueError as exc:
        raise ARCError(f"{what}: {exc}") from None
    # An empty h= signs no field, and an empty entry ("from::to") selects none: both pass in
    # the suite (ams_fields_h_empty, ams_fields_h_mis_hdr).
    names = (name.strip(" \t\r\n").lower() for name in tags["h"].split(":"))
    signed = tuple(name for name in names if name)
    for name in signed:
        if not _FIELD_NAME.fullmatch(name):
            raise ARCError(f"{what}: h= holds an invalid header field name {name!r}")
    if AS_NAME.lower() in signed:  # RFC 8617 §4.1.2
        raise ARCError(f"{what}: h= must not include ARC-Seal")
    timestamp = _number(tags, "t", what)
    expiration = _number(tags, "x", what)
    if timestamp is not None and expiration is not None and expiration < timestamp:
        raise ARCError(f"{what}: x= is before t=")
    return ARCMessageSignature(
        instance=instance,
        algorithm=_algorithm(tags["a"], what),
        signature=_b64(tags["b"], "b", what),
        body_hash=_b64(tags["bh"], "bh", what),
        header_canon=header_canon,
        body_canon=body_canon,
        domain=_domain(tags["d"], "d", what),
        selector=_domain(tags["s"], "s", what),
        signed_headers=signed,
        timestamp=timestamp,
        expiration=expiration,
        length=_number(tags, "l", what),
        b_text="".join(tags["b"].split()),
    )


def _aar_instance(text: str) -> tuple[int, int]:
    """The instance of an AAR value and where its payload starts."""
    match = _AAR_INSTANCE.match(text)
    if match is None:
        raise ARCError(f"{AAR_NAME}: the value must start with i=<instance>;")
    return _instance(match.group(1), AAR_NAME), match.end()


def parse_aar(value: bytes | str) -> ARCAuthenticationResults:
    """Parse an ARC-Authentication-Results value: ``i=N;`` first (RFC 8617 §4.1.1), then an
    Authentication-Results payload, read leniently; ARCError when the instance is malformed."""
    text = _text(value)
    instance, end = _aar_instance(text)
    return ARCAuthenticationResults(instance, " ".join(text[end:].split()))


def _field_instance(field: HeaderField) -> int:
    """The i= of an ARC field. For an AMS or AS only i= is read here: the whole tag list is
    checked when the field itself is (a malformed older AMS only lowers oldest-pass)."""
    what = field.name.decode("ascii", "replace")
    text = _text(field.value)
    if field.lname == AAR_NAME.lower():
        return _aar_instance(text)[0]
    found: str | None = None
    for spec in text.split(";"):
        name, eq, value = spec.partition("=")
        if eq and name.strip(" \t\r\n") == "i":
            if found is not None:
                raise ARCError(f"{what}: tag 'i' appears more than once")
            found = value.strip(" \t\r\n")
    if found is None:
        raise ARCError(f"{what}: missing required tag i=")
    return _instance(found, what)


def has_arc_fields(message: Message) -> bool:
    """Whether the message carries any ARC header field."""
    return not _ARC_NAMES.isdisjoint([f.lname for f in message.fields])  # (no generator)


def collect_sets(message: Message) -> list[ARCSetFields]:
    """The message's ARC sets in instance order, or ARCError naming the structural fault.

    RFC 8617 §5.2 step 1 and 3: at most 50 sets; exactly one AAR, AMS and AS per instance;
    instances 1..N without gap or repetition. An empty list means the message has no ARC
    header field at all.
    """
    found: dict[tuple[int, str], HeaderField] = {}
    for field in message.fields:
        if field.lname not in ARC_FIELD_NAMES:
            continue
        instance = _field_instance(field)
        key = (instance, field.lname)
        if key in found:
            raise ARCError(f"more than one {field.name.decode()} with i={instance}")
        found[key] = field
    if not found:
        return []
    highest = max(instance for instance, _ in found)
    sets: list[ARCSetFields] = []
    for instance in range(1, highest + 1):
        aar = found.get((instance, AAR_NAME.lower()))
        ams = found.get((instance, AMS_NAME.lower()))
        seal = found.get((instance, AS_NAME.lower()))
        if aar is None and ams is None and seal is None:
            raise ARCError(f"ARC set i={instance} is missing (instances must run 1..{highest})")
        if aar is None or ams is None or seal is None:
            missing = [
                proper
                for proper, part in ((AAR_NAME, aar), (AMS_NAME, ams), (AS_NAME, seal))
                if part is None
            ]
            raise ARCError(f"ARC set i={instance} has no {' and no '.join(missing)}")
        sets.append(ARCSetFields(instance, aar, ams, seal))
    return sets


def highest_instance(message: Message) -> int:
    """The highest i= any ARC field of the message claims, read leniently (0: none)."""
    highest = 0
    for field in message.fields:
        if field.lname in ARC_FIELD_NAMES:
            match = _LOOSE_INSTANCE.search(_text(field.value))
            if match:
                highest = max(highest, int(match.group(1)))
    return highest
