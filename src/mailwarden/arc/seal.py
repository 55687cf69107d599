"""ARC sealing (RFC 8617 §5.1): add an ARC set (AAR, AMS, AS) to a message.

`seal(...)` returns the three header fields, top to bottom, to prepend to the message; the
chain validation status of the chain already present is the caller's (from `ARCVerifier`),
so sealing itself does no DNS. `merge_authentication_results` gathers what this ADMD's
Authentication-Results fields say, for the ARC-Authentication-Results copy.

Output form: tags in alphabetical order, separated by "; ", folded only between tags, the b=
value never folded. Folding inside b= would put spaces into what the next ARC-Seal signs
(relaxed canonicalization keeps a folded value's inner space), so this is the form the ARC
test suite's expected seals were computed over.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterable, Sequence

from mailwarden.authres import authserv_id_of
from mailwarden.dkim import (
    DEFAULT_SIGNED_HEADERS,
    Algorithm,
    BodyHasher,
    PrivateKey,
    header_hash_input,
    parse_tag_list,
    sign_data,
    signed_header_names,
)
from mailwarden.dkim import TagListError as _TagListError
from mailwarden.dkim.sign import message_to_sign, signing_name
from mailwarden.message import HeaderField, Message

from .model import (
    AAR_NAME,
    ALGORITHMS,
    AMS_NAME,
    AS_NAME,
    MAX_INSTANCE,
    ARCError,
    ARCSetFields,
    ARCStatus,
    collect_sets,
    highest_instance,
)
from .verify import seal_input

__all__ = [
    "DEFAULT_AMS_HEADERS",
    "SealingError",
    "header_block",
    "merge_authentication_results",
    "seal",
    "split_resinfos",
]

# The AMS signs what a DKIM signer would, plus DKIM-Signature (RFC 8617 §4.1.2 suggests it);
# never ARC-Seal (§4.1.2) nor Authentication-Results (§4.1.2: receivers rewrite them).
DEFAULT_AMS_HEADERS = (*DEFAULT_SIGNED_HEADERS, "dkim-signature")
LINE_WIDTH = 78
_FIELD_NAME = re.compile(r"[\x21-\x39\x3c-\x7e]+")  # RFC 5322 ftext, no ";" (a tag-value)


class SealingError(ValueError):
    """The message cannot be sealed as asked (bad domain, key mismatch, inconsistent cv)."""


def split_resinfos(text: str) -> list[str]:
    """An Authentication-Results body split at the ";" that separate its parts (outside
    comments and quoted strings), each unfolded and stripped, empty parts dropped."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"' and not depth:
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif char == ";" and not depth:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    cleaned = (part.replace("\r", "").replace("\n", "").strip(" \t") for part in parts)
    return [part for part in cleaned if part]


def _results_part(value: str, authserv_id: str | None) -> list[str] | None:
    """The resinfos of an A-R body, or None when it claims another authserv-id."""
    claimed = authserv_id_of(value)
    if authserv_id is not None and (claimed is None or claimed.lower() != authserv_id.lower()):
        return None
    segments = split_resinfos(value)
    results = segments[1:]  # the first segment is the authserv-id (and version)
    return [r for r in results if r.lower() != "none"]


def merge_authentication_results(message: Message | bytes, authserv_id: str) -> str | None:
    """The results of every Authentication-Results field claiming `authserv_id`, in message
    order, joined with "; " (what the ARC-Authentication-Results copies, RFC 8617 §4.1.1).

    None when no such field exists; "" when they only say ``none``.
    """
    msg = _as_message(message)
    merged: list[str] = []
    found = False
    for field in msg.get_all("authentication-results"):
        results = _results_part(field.text(), authserv_id)
        if results is None:
            continue
        found = True
        merged.extend(results)
    return "; ".join(merged) if found else None


def _as_message(message: Message | bytes) -> Message:
    return message_to_sign(message, SealingError, "seal")


def _name(value: str, what: str) -> str:
    return signing_name(value, what, SealingError)


def _fold(name: str, tags: Sequence[tuple[str, str]]) -> str:
    """Tags joined with "; ", a fold between two tags where a line would pass LINE_WIDTH."""
    out: list[str] = []
    column = len(name) + 1
    for index, (tag, value) in enumerate(tags):
        item = f"{tag}={value}" + (";" if index < len(tags) - 1 else "")
        if index and column + 1 + len(item) > LINE_WIDTH:
            out.append("\r\n " + item)
            column = 1 + len(item)
        else:
            out.append(" " + item)
            column += 1 + len(item)
    return "".join(out)[1:]


def _field(name: str, value: str) -> HeaderField:
    data = value.encode("utf-8")
    return HeaderField.make(name.encode("ascii"), b" " + data, name.encode("ascii") + b": " + data)


def _latest_cv(message: Message, instance: int) -> str | None:
    """The cv= of the ARC-Seal with i=`instance`, read leniently."""
    for field in message.get_all(AS_NAME):
        try:
            tags = parse_tag_list(field.value)
        except _TagListError:
            continue
        if tags.get("i") == str(instance):
            return tags.get("cv")
    return None


def _aar_value(instance: int, authserv_id: str, auth_results: str) -> str:
    results = split_resinfos(auth_results)
    if results and results[0].split()[0].lower() == authserv_id.lower() and "=" not in results[0]:
        results = results[1:]  # a whole A-R body was given: keep its results only
    if not results:
        results = ["none"]  # RFC 8601 §2.2: no result
    return f"i={instance}; {authserv_id}; " + ";\r\n ".join(results)


def seal(
    message: Message | bytes,
    *,
    domain: str,
    selector: str,
    private_key: PrivateKey,
    algorithm: Algorithm | str | None = None,
    authserv_id: str,
    auth_results: str,
    chain_validation: ARCStatus | str,
    headers: Iterable[str] | None = None,
    timestamp: int | None = None,
    clock: Callable[[], float] = time.time,
) -> list[tuple[str, str]]:
    """The next ARC set for `message`: [(name, value)] for ARC-Seal, ARC-Message-Signature and
    ARC-Authentication-Results, in the order to prepend them (top first). Values carry no
    leading space; folds are CRLF + SP.

    `auth_results`: this ADMD's results, copied into the AAR after ``i=N; authserv_id;`` (the
    results part of its Authentication-Results, or a whole body claiming `authserv_id`).
    `chain_validation`: what `ARCVerifier` said of the chain as received (none when there is
    none). `headers`: the AMS h= list exactly as given (default: the DKIM defaults present in
    the message, plus DKIM-Signature). Empty list: the latest seal already says cv=fail, so
    the chain is terminated and a new set would change nothing (RFC 8617 §5.2 step 2).
    SealingError when the request is inconsistent.
    """
    msg = _as_message(message)
    try:
        cv = ARCStatus(chain_validation)
    except ValueError:
        raise SealingError(f"chain_validation {chain_validation!r} is not none/pass/fail") from None
    existing = highest_instance(msg)
    if existing == 0 and cv is not ARCStatus.NONE:
        raise SealingError(f"the message has no ARC set, so cv must be none, not {cv}")
    if existing > 0 and cv is ARCStatus.NONE:
        raise SealingError("the message has ARC sets, so cv must be pass or fail, not none")
    if existing > 0 and _latest_cv(msg, existing) == ARCStatus.FAIL:
        return []
    instance = existing + 1
    if instance > MAX_INSTANCE:  # RFC 8617 §4.2.1
        raise SealingError(f"the chain already has {existing} sets; at most {MAX_INSTANCE}")
    previous: list[ARCSetFields] = []
    if cv is ARCStatus.PASS:
        try:
            previous = collect_sets(msg)
        except ARCError as exc:
            raise SealingError(f"cv=pass, but the chain is malformed: {exc}") from None
        if len(previous) != existing:
            raise SealingError(f"cv=pass, but the chain's instances do not run 1..{existing}")
    # RFC 8617 §5.1.2: a failed chain is sealed as if the new set were the only one
    d = _name(domain, "domain")
    s = _name(selector, "selector")
    try:
        alg = Algorithm(algorithm) if algorithm is not None else Algorithm.for_key(private_key)
    except ValueError:
        raise SealingError(f"unknown algorithm {algorithm!r}") from None
    if alg not in ALGORITHMS:
        raise SealingError(f"{alg} must not be used for signing (RFC 8301)")
    if alg.key_type is not Algorithm.for_key(private_key).key_type:
        raise SealingError(f"a {alg} seal needs a {alg.key_type} key")
    srv = authserv_id.strip()
    if not srv or any(c in srv for c in ' \t\r\n;()"'):
        raise SealingError(f"invalid authserv-id {authserv_id!r}")
    if headers is None:
        names = signed_header_names(msg, DEFAULT_AMS_HEADERS, oversign=False)
    else:
        names = [h.strip().lower() for h in headers if h.strip()]
    for name in names:
        if not _FIELD_NAME.fullmatch(name):
            raise SealingError(f"invalid header field name {name!r} for h=")
    if AS_NAME.lower() in names:  # RFC 8617 §4.1.2
        raise SealingError("the ARC-Message-Signature must not sign ARC-Seal")
    t = str(int(clock()) if timestamp is None else timestamp)

    def sign(data: bytes) -> str:
        try:
            return base64.b64encode(sign_data(private_key, alg, data)).decode("ascii")
        except TypeError as exc:
            raise SealingError(str(exc)) from None

    # ARC-Authentication-Results (RFC 8617 §4.1.1)
    aar_value = _aar_value(instance, srv, auth_results)
    aar = _field(AAR_NAME, aar_value)
    with_aar = Message((aar, *msg.fields), msg.separator, msg.body)

    # ARC-Message-Signature (§4.1.2): DKIM-like, relaxed/relaxed, i= the instance
    body_hash = base64.b64encode(BodyHasher(msg.body).digest(True)).decode("ascii")

    def ams_tags(b: str) -> list[tuple[str, str]]:
        return [
            ("a", alg.value),
            ("b", b),
            ("bh", body_hash),
            ("c", "relaxed/relaxed"),
            ("d", d),
            ("h", ":".join(names)),
            ("i", str(instance)),
            ("s", s),
            ("t", t),
        ]

    template = _field(AMS_NAME, _fold(AMS_NAME, ams_tags("")))
    ams_b = sign(header_hash_input(with_aar, names, True, template))
    ams_value = _fold(AMS_NAME, ams_tags(ams_b))
    ams = _field(AMS_NAME, ams_value)

    # ARC-Seal (§4.1.3, §5.1.1): the sets in instance order, relaxed header canonicalization
    def as_tags(b: str) -> list[tuple[str, str]]:
        return [
            ("a", alg.value),
            ("b", b),
            ("cv", cv.value),
            ("d", d),
            ("i", str(instance)),
            ("s", s),
            ("t", t),
        ]

    as_template = _field(AS_NAME, _fold(AS_NAME, as_tags("")))
    sets = [*previous, ARCSetFields(instance, aar, ams, as_template)]
    as_value = _fold(AS_NAME, as_tags(sign(seal_input(sets))))
    return [(AS_NAME, as_value), (AMS_NAME, ams_value), (AAR_NAME, aar_value)]


def header_block(fields: Sequence[tuple[str, str]]) -> bytes:
    """(name, value) pairs as header fields ready to prepend (``Name: value`` + CRLF each)."""
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)
