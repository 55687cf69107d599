"""Analyze a received message for a person: its path, where it entered the organisation, what
its authentication headers say, and what the checks say now.

The pure parts work on a parsed `Message`: `read_hops` (the Received chain in travel order,
with delays, clock skew and out-of-order times), `find_boundary` (the trust boundary: the first
hop that entered the receiving organisation), `explain_headers` (Authentication-Results,
Received-SPF, DKIM-Signature and ARC sets in plain words) and `compare` (what changed since the
message was received). `reverify` does the DNS work: DKIM, ARC, SPF and DMARC for the boundary
address, iprev and DNS lists for every relaying address, concurrently. `analyze_message` runs
the lot and returns an `Analysis` whose `to_dict()` is the JSON of `mailwarden analyze`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import itertools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailwarden.arc import (
    ARCError,
    ARCResult,
    ARCVerifier,
    collect_sets,
    parse_aar,
    parse_message_signature,
    parse_seal,
)
from mailwarden.authres import AuthenticationResults, ParseError, ResInfo
from mailwarden.authres import parse_authentication_results as parse_ar
from mailwarden.dkim import DKIMResult, DKIMStatus, DKIMVerifier, SignatureError, parse_signature
from mailwarden.dmarc import DMARCEvaluator, DMARCResult
from mailwarden.dns import IPAddress, Resolver, parse_ip
from mailwarden.dns.cache import CachingResolver
from mailwarden.dnsbl import DNSList, DNSListChecker, DNSListReport
from mailwarden.iprev import IprevResult, check_iprev
from mailwarden.message import Message
from mailwarden.received import ParseError as ReceivedParseError
from mailwarden.received import ReceivedHop, parse_received
from mailwarden.spf import SPFChecker, SPFResult

__all__ = [
    "MAX_CLOCK_SKEW",
    "Analysis",
    "BoundaryMethod",
    "Change",
    "HeaderExplanation",
    "Hop",
    "RelayHop",
    "Reverification",
    "TrustBoundary",
    "analyze_message",
    "compare",
    "explain_headers",
    "find_boundary",
    "read_hops",
    "reverify",
]

MAX_CLOCK_SKEW = 600  # seconds a hop may seem earlier than the one before: clocks differ
MAX_RELAYS = 20  # relaying addresses checked (iprev, DNS lists) at most


# -- the Received chain ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    """One Received field in travel order: `index` 1 is the oldest, `position` 0 the topmost
    field. `hop` is None when the field could not be read at all (`error` says why)."""

    index: int
    position: int
    hop: ReceivedHop | None
    error: str = ""
    delay: float | None = None  # seconds since the previous hop (None: a time is missing)
    trusted: bool = False  # written by a host of the receiving organisation
    flags: tuple[str, ...] = ()  # clock-skew, out-of-order, in-the-future, forged, chain-break
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        hop = self.hop
        tls = hop.tls if hop is not None else None
        return {
            "index": self.index,
            "position": self.position,
            "from": None
            if hop is None
            else {
                "name": hop.from_name or None,
                "helo": hop.helo or None,
                "reverse_name": hop.reverse_name or None,
                "ip": str(hop.ip) if hop.ip is not None else None,
            },
            "by": hop.by or None if hop else None,
            "by_comment": hop.by_comment or None if hop else None,
            "with": None
            if hop is None
            else {
                "protocol": hop.protocol or None,
                "tls": None if tls is None else {"version": tls.version, "cipher": tls.cipher},
            },
            "id": hop.id or None if hop else None,
            "for": hop.for_address or None if hop else None,
            "time": hop.date.isoformat() if hop and hop.date else None,
            "time_text": hop.date_text or None if hop else None,
            "delay": self.delay,
            "trusted": self.trusted,
            "flags": list(self.flags),
            "notes": list(self.notes),
            "problems": list(hop.problems) if hop else [],
            "error": self.error or None,
        }


def read_hops(message: Message, *, now: float | None = None) -> list[Hop]:
    """The Received fields in travel order (oldest first), with delays and time flags."""
    fields = message.get_all("received")
    hops: list[Hop] = []
    total = len(fields)
    for position, received in enumerate(fields):
        index = total - position
        try:
            hops.append(Hop(index, position, parse_received(received.text())))
        except ReceivedParseError as exc:
            hops.append(Hop(index, position, None, error=str(exc)))
    hops.sort(key=lambda h: h.index)
    out: list[Hop] = []
    previous: float | None = None
    for hop in hops:
        stamp = hop.hop.timestamp if hop.hop is not None else None
        flags: list[str] = []
        notes: list[str] = []
        delay = None
        if stamp is not None and previous is not None:
            delay = stamp - previous
            if -MAX_CLOCK_SKEW <= delay < 0:
                flags.append("clock-skew")
                notes.append(
                    f"{-delay:g} s earlier than the hop before: one of the two clocks is off"
                )
            elif delay < -MAX_CLOCK_SKEW:
                flags.append("out-of-order")
                notes.append(
                    f"{_duration(-delay)} earlier than the hop before: the fields are out of "
                    "order, or one was forged"
                )
        if stamp is not None and now is not None and stamp > now + MAX_CLOCK_SKEW:
            flags.append("in-the-future")
            notes.append(f"dated {_duration(stamp - now)} in the future: that host's clock is off")
        if stamp is not None:
            previous = stamp
        out.append(_replace_hop(hop, delay=delay, flags=tuple(flags), notes=tuple(notes)))
    return out


def _replace_hop(hop: Hop, **changes: Any) -> Hop:
    return dataclasses.replace(hop, **changes)


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# -- the trust boundary ------------------------------------------------------------------------


class BoundaryMethod(StrEnum):
    """How the receiving organisation's hosts were known."""

    TRUSTED_HOST = "trusted-host"  # --trusted-host names
    AUTHSERV_ID = "authserv-id"  # the topmost Authentication-Results' authserv-id
    TOPMOST = "topmost"  # nothing to go by: the topmost Received field is assumed ours


@dataclass(frozen=True, slots=True)
class TrustBoundary:
    """The first hop that entered the receiving organisation (`hop` is its index)."""

    hop: int | None
    method: BoundaryMethod
    trusted_names: tuple[str, ...]
    reason: str
    by: str = ""
    ip: IPAddress | None = None
    helo: str = ""
    reverse_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "by": self.by or None,
            "ip": str(self.ip) if self.ip is not None else None,
            "helo": self.helo or None,
            "reverse_name": self.reverse_name or None,
            "method": self.method.value,
            "trusted_names": list(self.trusted_names),
            "reason": self.reason,
        }


def _is_trusted(name: str, trusted: Sequence[str]) -> bool:
    name = name.lower().rstrip(".")
    return bool(name) and any(name == t or name.endswith("." + t) for t in trusted)


def _internal_client(hop: ReceivedHop, trusted: Sequence[str]) -> bool:
    """The client of this hop is one of ours: its reverse name (looked up by our server, so
    not the client's claim, unlike HELO) is trusted, or it is the host itself (loopback)."""
    if hop.ip is not None and hop.ip.is_loopback:
        return True
    return _is_trusted(hop.reverse_name, trusted)


def topmost_authserv_id(message: Message) -> str | None:
    """The authserv-id of the topmost readable Authentication-Results field."""
    for received in message.get_all("authentication-results"):
        try:
            return parse_ar(received.text()).authserv_id.lower()
        except ParseError:
            continue
    return None


def find_boundary(
    hops: Sequence[Hop], trusted_hosts: Sequence[str] = (), authserv_id: str | None = None
) -> tuple[TrustBoundary, list[Hop]]:
    """The trust boundary and the hops with `trusted` set and forged hops flagged.

    Hops above the topmost one written by a trusted host are delivery inside the organisation;
    from there down, hops whose client is itself trusted are internal too; the first hop whose
    client is outside is the boundary. Anything below it was written outside and may be forged.
    """
    names = tuple(n.lower().rstrip(".") for n in trusted_hosts if n.strip())
    method = BoundaryMethod.TRUSTED_HOST
    if not names and authserv_id:
        method = BoundaryMethod.AUTHSERV_ID
        names = (authserv_id,)
        if not any(h.hop and h.hop.by == authserv_id for h in hops):
            labels = authserv_id.split(".")
            if len(labels) >= 3:  # no hop by that exact name: its parent domain's hosts
                names = (authserv_id, ".".join(labels[1:]))
    top_down = sorted(hops, key=lambda h: h.position)
    start = None
    if names:
        start = next(
            (i for i, h in enumerate(top_down) if h.hop and _is_trusted(h.hop.by, names)), None
        )
    reason = ""
    if start is None:
        start = next((i for i, h in enumerate(top_down) if h.hop is not None), None)
        reason = (
            "no Received field was written by a trusted host: the topmost one is assumed ours"
            if names
            else "no --trusted-host and no Authentication-Results: the topmost Received field "
            "is assumed ours"
        )
        method = BoundaryMethod.TOPMOST
    if start is None:
        boundary = TrustBoundary(None, method, names, "no readable Received field")
        return boundary, sorted(hops, key=lambda h: h.index)
    position = start
    while position + 1 < len(top_down):
        current = top_down[position].hop
        below = top_down[position + 1].hop
        if current is None or below is None or not _internal_client(current, names):
            break
        if method is not BoundaryMethod.TOPMOST and not _is_trusted(below.by, names):
            break
        position += 1
    entry = top_down[position]
    assert entry.hop is not None
    if not reason:
        reason = (
            f"hop {entry.index} is the first, going down from the top, written by a trusted "
            f"host ({entry.hop.by}) for a client outside"
        )
    boundary = TrustBoundary(
        entry.index,
        method,
        names,
        reason,
        entry.hop.by,
        entry.hop.ip,
        entry.hop.helo,
        entry.hop.reverse_name,
    )
    marked: list[Hop] = []
    for number, hop in enumerate(top_down):
        flags = list(hop.flags)
        notes = list(hop.notes)
        trusted = number <= position
        if not trusted and hop.hop is not None and _is_trusted(hop.hop.by, names):
            flags.append("forged")
            notes.append(
                f"claims to be written by {hop.hop.by}, a trusted host, but lies below the "
                "trust boundary: written by someone outside, so forged"
            )
        marked.append(_replace_hop(hop, trusted=trusted, flags=tuple(flags), notes=tuple(notes)))
    marked.sort(key=lambda h: h.index)
    for older, newer in itertools.pairwise(list(marked)):
        if older.trusted or older.hop is None or newer.hop is None:
            continue  # inside the organisation, hosts hand over under many names
        if not older.hop.by or not newer.hop.from_name:
            continue
        client = {newer.hop.from_name, newer.hop.helo, newer.hop.reverse_name} - {""}
        if older.hop.by in client or "." not in older.hop.by:
            continue
        parent = older.hop.by.split(".", 1)[1]
        if any(name == parent or name.endswith("." + parent) for name in client):
            continue
        if older.hop.ip is None and older.hop.by.replace(":", "").isalnum():
            continue
        index = marked.index(older)
        marked[index] = _replace_hop(
            older,
            flags=(*older.flags, "chain-break"),
            notes=(
                *older.notes,
                f"received by {older.hop.by}, but the next hop got it from "
                f"{', '.join(sorted(client))}: a gap in the chain (or an unrecorded relay)",
            ),
        )
    return boundary, marked


# -- the authentication headers in plain words --------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderExplanation:
    """One authentication header field (or ARC set) explained."""

    kind: str  # authentication-results, received-spf, dkim-signature, arc-set
    position: int  # among the header fields, 0 = topmost
    lines: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)
    trusted: bool | None = None  # written inside the trust boundary (None: cannot tell)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "position": self.position,
            "trusted": self.trusted,
            "explanation": list(self.lines),
            "data": self.data,
            "error": self.error or None,
        }


_RESULT_WORDS = {
    "spf": {
        "pass": "the client was allowed to send for {who} by its SPF policy",
        "fail": "the client was NOT allowed to send for {who} (SPF -all)",
        "softfail": "the client is probably not allowed to send for {who} (SPF ~all)",
        "neutral": "{who}'s SPF policy says nothing about the client (?all)",
        "none": "{who} has no SPF policy",
        "temperror": "SPF could not be checked for {who}: DNS trouble",
        "permerror": "{who}'s SPF policy is broken (permerror)",
    },
    "dkim": {
        "pass": "a valid DKIM signature by {who}",
        "fail": "a DKIM signature by {who} does not verify: the message was altered",
        "neutral": "a DKIM signature by {who} could not be judged",
        "none": "the message was not DKIM-signed",
        "policy": "a DKIM signature by {who} was valid but not acceptable by local policy",
        "temperror": "a DKIM signature by {who} could not be checked: DNS trouble",
        "permerror": "a DKIM signature by {who} is unusable (bad syntax or no key)",
    },
    "dmarc": {
        "pass": "the From domain {who} is aligned with a passing SPF or DKIM result",
        "fail": "the From domain {who} is NOT aligned with any passing SPF or DKIM result",
        "none": "the From domain {who} has no DMARC policy",
        "temperror": "DMARC for {who} could not be checked: DNS trouble",
        "permerror": "DMARC for {who} could not be evaluated",
    },
    "arc": {
        "pass": "the ARC chain of earlier forwarders verified",
        "fail": "the ARC chain is broken",
        "none": "the message had no ARC chain",
    },
    "iprev": {
        "pass": "the reverse DNS name of the client {who} maps back to its address",
        "fail": "the reverse DNS name of the client {who} does not map back to its address",
        "temperror": "the client's reverse DNS could not be checked: DNS trouble",
        "permerror": "the client's address has no reverse DNS name",
    },
}


def describe_resinfo(info: ResInfo) -> str:
    """One resinfo in plain words."""
    method = info.method.lower()
    result = info.result.lower()
    who = (
        info.get("smtp", "mailfrom")
        or info.get("smtp", "helo")
        or info.get("header", "d")
        or info.get("header", "i")
        or info.get("header", "from")
        or info.get("policy", "iprev")
        or "the domain"
    )
    if method == "dkim" and info.get("header", "s"):
        who = f"{who} (s={info.get('header', 's')})"
    template = _RESULT_WORDS.get(method, {}).get(result)
    text = template.format(who=who) if template else f"{method} result: {result}"
    extra = []
    if method == "dmarc" and info.get("policy", "dmarc"):
        extra.append(f"policy {info.get('policy', 'dmarc')}")
    if info.reason:
        extra.append(info.reason)
    extra.extend(info.comments)
    if extra:
        text += f" ({'; '.join(extra)})"
    return f"{method}={result}: {text}"


_RSPF_PAIR = re.compile(r"([A-Za-z-]+)\s*=\s*(\"(?:[^\"\\]|\\.)*\"|[^;\s]+)")


def parse_received_spf(value: str) -> dict[str, Any]:
    """A Received-SPF value (RFC 7208 §9.1), read leniently: result, comment, key=value pairs."""
    text = " ".join(value.split())
    result, _, rest = text.partition(" ")
    comment = ""
    if rest.startswith("("):
        depth = 0
        for i, char in enumerate(rest):
            depth += (char == "(") - (char == ")")
            if depth == 0:
                comment, rest = rest[1:i], rest[i + 1 :]
                break
    pairs = {k.lower(): v.strip('"') for k, v in _RSPF_PAIR.findall(rest)}
    return {"result": result.lower(), "comment": comment or None, **pairs}


def _ar_explanation(position: int, value: str, trusted: Sequence[str]) -> HeaderExplanation:
    try:
        results = parse_ar(value)
    except ParseError as exc:
        return HeaderExplanation(
            "authentication-results", position, (f"unreadable: {exc}",), error=str(exc)
        )
    ours = _is_trusted(results.authserv_id, trusted) if trusted else None
    who = results.authserv_id
    lines = [
        f"written by {who}"
        + (
            ", inside the trust boundary"
            if ours
            else ", outside the trust boundary: it may be forged or stale"
            if ours is False
            else ""
        )
    ]
    if not results.results:
        lines.append("no authentication was done (none)")
    lines.extend(describe_resinfo(info) for info in results.results)
    return HeaderExplanation(
        "authentication-results",
        position,
        tuple(lines),
        {
            "authserv_id": who,
            "results": [
                {
                    "method": r.method,
                    "result": r.result,
                    "reason": r.reason,
                    "properties": {f"{p.ptype}.{p.name}": p.value for p in r.properties},
                }
                for r in results.results
            ],
        },
        trusted=ours,
    )


def _spf_explanation(position: int, value: str) -> HeaderExplanation:
    data = parse_received_spf(value)
    who = data.get("envelope-from") or data.get("helo") or "the sender"
    template = _RESULT_WORDS["spf"].get(data["result"])
    line = (
        f"spf={data['result']}: {template.format(who=who)}"
        if template
        else f"unknown SPF result {data['result']!r}"
    )
    lines = [line]
    if data.get("client-ip"):
        lines.append(f"client address {data['client-ip']}, HELO {data.get('helo') or '-'}")
    if data.get("receiver"):
        lines.append(f"checked by {data['receiver']}")
    return HeaderExplanation("received-spf", position, tuple(lines), data)


def _dkim_explanation(
    position: int, value: bytes, results: Sequence[DKIMResult]
) -> HeaderExplanation:
    try:
        sig = parse_signature(value)
    except SignatureError as exc:
        return HeaderExplanation(
            "dkim-signature", position, (f"unusable signature: {exc}",), error=str(exc)
        )
    match = next((r for r in results if r.signature_b and r.signature_b == sig.b_text), None)
    names = list(dict.fromkeys(sig.signed_headers))
    oversigned = [n for n in names if sig.signed_headers.count(n) > 1]
    lines = [
        f"signed by {sig.domain} with selector {sig.selector} ({sig.algorithm.value}, "
        f"canonicalization {sig.canonicalization})",
        f"signs {len(names)} header fields: {', '.join(names)}",
    ]
    if oversigned:
        lines.append(
            f"oversigns {', '.join(oversigned)}: no further field of that name can be added"
        )
    if "from" not in sig.signed_headers:
        lines.append("does not sign From: invalid (RFC 6376 §5.4)")
    if sig.length is not None:
        lines.append(
            f"l={sig.length}: only the first {sig.length} body bytes are signed; "
            "anything appended after them is not protected"
        )
    if sig.timestamp is not None:
        lines.append(f"signed at {_iso(sig.timestamp)}")
    if sig.expiration is not None:
        lines.append(f"expires at {_iso(sig.expiration)}")
    if match is not None and match.key_bits:
        lines.append(f"key: {match.key_bits} bits (fetched now)")
    return HeaderExplanation(
        "dkim-signature",
        position,
        tuple(lines),
        {
            "domain": sig.domain,
            "selector": sig.selector,
            "algorithm": sig.algorithm.value,
            "canonicalization": sig.canonicalization,
            "signed_headers": list(sig.signed_headers),
            "length": sig.length,
            "timestamp": sig.timestamp,
            "expiration": sig.expiration,
            "identity": sig.identity,
            "key_bits": match.key_bits if match is not None else None,
        },
    )


def _iso(stamp: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return str(stamp)


def _arc_explanations(message: Message) -> list[HeaderExplanation]:
    try:
        sets = collect_sets(message)
    except ARCError as exc:
        return [HeaderExplanation("arc-set", 0, (f"broken ARC chain: {exc}",), error=str(exc))]
    positions = {id(f): n for n, f in enumerate(message.fields)}
    out: list[HeaderExplanation] = []
    for arc_set in sets:
        lines: list[str] = []
        data: dict[str, Any] = {"instance": arc_set.instance}
        error = ""
        try:
            seal_fields = parse_seal(arc_set.seal.value)
            lines.append(
                f"i={arc_set.instance}: sealed by {seal_fields.domain} (s={seal_fields.selector}),"
                f" which found the chain before it: cv={seal_fields.cv.value}"
            )
            data.update(seal_domain=seal_fields.domain, cv=seal_fields.cv.value)
        except ARCError as exc:
            error = f"ARC-Seal: {exc}"
        try:
            ams = parse_message_signature(arc_set.ams.value)
            lines.append(f"message signature by {ams.domain} over {', '.join(ams.signed_headers)}")
            data.update(ams_domain=ams.domain, signed_headers=list(ams.signed_headers))
        except ARCError as exc:
            error = error or f"ARC-Message-Signature: {exc}"
        try:
            aar = parse_aar(arc_set.aar.value)
            parsed = aar.parsed
            if parsed is not None:
                lines.append(f"{parsed.authserv_id} recorded:")
                lines.extend("  " + describe_resinfo(r) for r in parsed.results)
                data["authserv_id"] = parsed.authserv_id
        except ARCError as exc:
            error = error or f"ARC-Authentication-Results: {exc}"
        if error:
            lines.append(error)
        out.append(
            HeaderExplanation(
                "arc-set", positions.get(id(arc_set.seal), 0), tuple(lines), data, error=error
            )
        )
    return out


def explain_headers(
    message: Message,
    trusted_names: Sequence[str] = (),
    dkim: Sequence[DKIMResult] = (),
    boundary_field: int | None = None,
) -> list[HeaderExplanation]:
    """Every Authentication-Results, Received-SPF, DKIM-Signature and ARC set, in words.

    An Authentication-Results field is trusted when its authserv-id is a trusted name and it
    lies above `boundary_field` (the position of the Received field of the hop before the
    boundary): one below it was already in the message when it entered the organisation
    (RFC 8601 §5).
    """
    out: list[HeaderExplanation] = []
    for position, header in enumerate(message.fields):
        if header.lname == "authentication-results":
            above = boundary_field is None or position < boundary_field
            names = trusted_names if above else ()
            explanation = _ar_explanation(position, header.text(), names)
            if trusted_names and not above:
                explanation = dataclasses.replace(
                    explanation,
                    trusted=False,
                    lines=(
                        *explanation.lines[:1],
                        "below the trust boundary: it was in the message before it entered the"
                        " organisation, so it is forged or stale whoever it names",
                        *explanation.lines[1:],
                    ),
                )
            out.append(explanation)
        elif header.lname == "received-spf":
            out.append(_spf_explanation(position, header.text()))
        elif header.lname == "dkim-signature":
            out.append(_dkim_explanation(position, header.value, dkim))
    out.extend(_arc_explanations(message))
    out.sort(key=lambda e: e.position)
    return out


# -- re-verification now -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayHop:
    """A relaying address seen in the chain and what reverse DNS and DNS lists say now."""

    hop: int
    ip: IPAddress
    iprev: IprevResult | None
    dnsbl: DNSListReport | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "ip": str(self.ip),
            "iprev": None
            if self.iprev is None
            else {
                "result": self.iprev.result.value,
                "name": self.iprev.name,
                "names": list(self.iprev.names),
                "reason": self.iprev.reason,
            },
            "dnsbl": None
            if self.dnsbl is None
            else [
                {
                    "list": r.list,
                    "zone": r.zone,
                    "status": r.status.value,
                    "codes": [str(c) for c in r.codes],
                    "reason": r.reason,
                }
                for r in self.dnsbl.results
            ],
            "listed": [] if self.dnsbl is None else [r.list for r in self.dnsbl.listed],
            "note": self.note or None,
        }


@dataclass(frozen=True, slots=True)
class Reverification:
    """The checks run again now, for the boundary address (or the one given)."""

    ip: IPAddress | None
    ip_source: str  # "boundary", "option" or "none"
    helo: str
    mail_from: str
    spf: SPFResult | None
    dkim: tuple[DKIMResult, ...]
    arc: ARCResult
    dmarc: DMARCResult
    relays: tuple[RelayHop, ...]

    def to_dict(self) -> dict[str, Any]:
        spf = self.spf
        return {
            "ip": str(self.ip) if self.ip is not None else None,
            "ip_source": self.ip_source,
            "helo": self.helo or None,
            "mail_from": self.mail_from,
            "spf": None
            if spf is None
            else {
                "result": spf.result.value,
                "domain": spf.domain,
                "reason": spf.reason,
                "mechanism": spf.mechanism,
            },
            "dkim": [
                {
                    "result": r.result.value,
                    "domain": r.domain,
                    "selector": r.selector,
                    "algorithm": r.algorithm,
                    "key_bits": r.key_bits,
                    "reason": r.reason,
                    "body_length": r.body_length,
                    "testing": r.testing,
                }
                for r in self.dkim
            ],
            "arc": {
                "result": self.arc.result.value,
                "reason": self.arc.reason,
                "instances": self.arc.instances,
                "oldest_pass": self.arc.oldest_pass,
            },
            "dmarc": {
                "result": self.dmarc.result.value,
                "domain": self.dmarc.domain or None,
                "policy": self.dmarc.policy.value if self.dmarc.policy else None,
                "reason": self.dmarc.reason,
                "policy_domain": self.dmarc.policy_domain,
            },
            "relays": [r.to_dict() for r in self.relays],
        }


# Addresses of private networks: their reverse DNS and DNS-list status mean nothing outside.
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def _checkable(ip: IPAddress) -> bool:
    """Worth asking DNS about: not loopback, link-local, multicast, unspecified or private.
    (Documentation ranges are checked, so that test zones can describe them.)"""
    if ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return False
    return not any(ip.version == net.version and ip in net for net in _PRIVATE)


async def _relay(
    resolver: Resolver, checker: DNSListChecker | None, hop: int, ip: IPAddress
) -> RelayHop:
    if not _checkable(ip):
        return RelayHop(hop, ip, None, None, "private or reserved address: not checked")
    if checker is None:
        return RelayHop(hop, ip, await check_iprev(resolver, ip), None)
    iprev, report = await asyncio.gather(check_iprev(resolver, ip), checker.check_ip(ip))
    return RelayHop(hop, ip, iprev, report)


def envelope_sender(
    message: Message, recorded: Sequence[ResInfo] = (), boundary_field: int | None = None
) -> str:
    """The MAIL FROM address as recorded: Return-Path (final delivery), else smtp.mailfrom of
    our recorded SPF result, else a Received-SPF envelope-from above the boundary; '' (null)."""
    header = message.get("return-path")
    if header is not None:
        text = header.text().strip()
        return text[1:-1].strip() if text.startswith("<") and text.endswith(">") else text
    for info in recorded:
        if info.method.lower() == "spf" and info.get("smtp", "mailfrom"):
            return info.get("smtp", "mailfrom") or ""
    for position, field_ in enumerate(message.fields):
        if boundary_field is not None and position > boundary_field:
            break
        if field_.lname == "received-spf":
            sender = parse_received_spf(field_.text()).get("envelope-from")
            if isinstance(sender, str):
                return sender
    return ""


async def reverify(
    message: Message,
    resolver: Resolver,
    *,
    ip: IPAddress | None,
    ip_source: str,
    helo: str,
    mail_from: str,
    hops: Sequence[Hop] = (),
    dns_lists: Iterable[DNSList] = (),
    clock: Callable[[], float] = time.time,
    receiver: str = "mailwarden.analyze",
) -> Reverification:
    """DKIM, ARC, SPF (when an address is known) and DMARC now; iprev and DNS lists of every
    relaying address. Independent lookups run concurrently through one cache."""
    if not isinstance(resolver, CachingResolver):
        resolver = CachingResolver(resolver)
    lists = tuple(dns_lists)
    checker = DNSListChecker(resolver, lists, clock=clock) if lists else None
    spf_checker = SPFChecker(resolver, receiver=receiver, clock=clock)
    relays_seen: dict[IPAddress, int] = {}
    for hop in hops:
        if hop.hop is not None and hop.hop.ip is not None and hop.hop.ip not in relays_seen:
            relays_seen[hop.hop.ip] = hop.index
    if ip is not None and ip not in relays_seen:
        relays_seen[ip] = 0
    relay_items = list(relays_seen.items())[:MAX_RELAYS]

    async def spf_now() -> SPFResult | None:
        if ip is None:
            return None
        return await spf_checker.check_mailfrom(ip, mail_from, helo or str(ip))

    relays_task = asyncio.gather(
        *(_relay(resolver, checker, index, address) for address, index in relay_items)
    )
    try:
        dkim_results, arc_result, spf_result = await asyncio.gather(
            DKIMVerifier(resolver, clock=clock).verify(message),
            ARCVerifier(resolver, clock=clock).verify(message),
            spf_now(),
        )
        relays = await relays_task
    finally:
        relays_task.cancel()
    from_values = [f.text() for f in message.get_all("from")]
    dmarc_result = await DMARCEvaluator(resolver).evaluate(from_values, spf_result, dkim_results)
    return Reverification(
        ip,
        ip_source,
        helo,
        mail_from,
        spf_result,
        tuple(dkim_results),
        arc_result,
        dmarc_result,
        tuple(relays),
    )


# -- what changed since --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One result as recorded when the message was received, and as it is now."""

    method: str
    subject: str
    then: str | None  # None: not recorded
    now: str | None  # None: not checked now
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.then is not None and self.now is not None and self.then != self.now

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "subject": self.subject,
            "then": self.then,
            "now": self.now,
            "changed": self.changed,
            "note": self.note or None,
        }


def received_field_positions(message: Message) -> list[int]:
    """Positions among all header fields of the Received fields, topmost first."""
    return [n for n, f in enumerate(message.fields) if f.lname == "received"]


def recorded_results(
    message: Message, trusted_names: Sequence[str], boundary_field: int | None = None
) -> list[ResInfo]:
    """The results our organisation recorded: Authentication-Results fields with a trusted
    authserv-id above `boundary_field` (see explain_headers); without trusted names, the
    topmost."""
    fields: list[AuthenticationResults] = []
    for position, header in enumerate(message.fields):
        if header.lname != "authentication-results":
            continue
        if boundary_field is not None and position > boundary_field:
            break
        try:
            fields.append(parse_ar(header.text()))
        except ParseError:
            continue
    if trusted_names:
        chosen = [f for f in fields if _is_trusted(f.authserv_id, trusted_names)]
    else:
        chosen = fields[:1]
    return [info for f in chosen for info in f.results]


def _dkim_note(then: str, now: DKIMResult) -> str:
    if then == "pass" and now.result is DKIMStatus.PASS:
        return ""
    if then == "pass" and now.result is DKIMStatus.PERMERROR and "no key" in now.reason:
        return "the key was removed since (rotated away): old signatures can no longer be checked"
    if then == "pass" and now.result is DKIMStatus.FAIL:
        return "the key changed since, or the message was altered after it was received"
    if now.result is DKIMStatus.TEMPERROR:
        return "DNS trouble now: try again"
    return now.reason if then != now.result.value else ""


def compare(recorded: Sequence[ResInfo], now: Reverification) -> list[Change]:
    """Recorded results against today's, method by method."""
    changes: list[Change] = []
    spf_then = next((r for r in recorded if r.method.lower() == "spf"), None)
    if spf_then is not None or now.spf is not None:
        subject = (spf_then.get("smtp", "mailfrom") if spf_then else None) or now.mail_from or "-"
        note = ""
        if spf_then is not None and now.spf is not None and spf_then.result != now.spf.result:
            note = "the SPF policy changed since, or a different address was checked"
            if now.spf.result.value in ("temperror",):
                note = "DNS trouble now: try again"
        changes.append(
            Change(
                "spf",
                subject,
                spf_then.result.lower() if spf_then else None,
                now.spf.result.value if now.spf else None,
                note,
            )
        )
    dkim_then = [r for r in recorded if r.method.lower() == "dkim" and r.result.lower() != "none"]
    used: set[int] = set()
    for info in dkim_then:
        domain = (info.get("header", "d") or "").lower()
        selector = (info.get("header", "s") or "").lower()
        prefix = info.get("header", "b") or ""
        match = None
        for number, result in enumerate(now.dkim):
            if number in used:
                continue
            if prefix and result.signature_b.startswith(prefix):
                match = number
                break
            if domain and result.domain == domain and (not selector or result.selector == selector):
                match = number
                break
        subject = f"d={domain or '?'}" + (f" s={selector}" if selector else "")
        if match is None:
            changes.append(
                Change("dkim", subject, info.result.lower(), None, "signature not found")
            )
            continue
        used.add(match)
        result = now.dkim[match]
        changes.append(
            Change(
                "dkim",
                f"d={result.domain} s={result.selector}",
                info.result.lower(),
                result.result.value,
                _dkim_note(info.result.lower(), result),
            )
        )
    for number, result in enumerate(now.dkim):
        if number not in used:
            changes.append(
                Change("dkim", f"d={result.domain} s={result.selector}", None, result.result.value)
            )
    for method, value in (("dmarc", now.dmarc.result.value), ("arc", now.arc.result.value)):
        then = next((r for r in recorded if r.method.lower() == method), None)
        subject = (
            now.dmarc.domain or "-"
            if method == "dmarc"
            else f"{now.arc.instances} set{'s' * (now.arc.instances != 1)}"
        )
        note = ""
        if then is not None and then.result.lower() != value:
            note = (
                "follows from the SPF and DKIM changes above"
                if method == "dmarc"
                else now.arc.reason
            )
        changes.append(Change(method, subject, then.result.lower() if then else None, value, note))
    iprev_then = next((r for r in recorded if r.method.lower() == "iprev"), None)
    boundary_relay = next((r for r in now.relays if r.ip == now.ip), None)
    if iprev_then is not None or (boundary_relay is not None and boundary_relay.iprev):
        iprev_now = boundary_relay.iprev if boundary_relay is not None else None
        changes.append(
            Change(
                "iprev",
                str(now.ip) if now.ip else "-",
                iprev_then.result.lower() if iprev_then else None,
                iprev_now.result.value if iprev_now else None,
                "reverse DNS changed since"
                if iprev_then and iprev_now and iprev_then.result.lower() != iprev_now.result.value
                else "",
            )
        )
    return changes


# -- the whole analysis --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Analysis:
    hops: tuple[Hop, ...]
    boundary: TrustBoundary
    headers: tuple[HeaderExplanation, ...]
    reverification: Reverification | None
    changes: tuple[Change, ...]

    @property
    def summary(self) -> str:
        parts = [f"{len(self.hops)} hop{'s' * (len(self.hops) != 1)}"]
        b = self.boundary
        if b.hop is not None:
            parts.append(
                f"entered at hop {b.hop} from {b.ip or 'an unknown address'}"
                f" (HELO {b.helo or '-'}) by {b.by or '-'}"
            )
        flagged = sorted({flag for hop in self.hops for flag in hop.flags})
        if flagged:
            parts.append("flags: " + ", ".join(flagged))
        now = self.reverification
        if now is not None:
            words = [f"spf={now.spf.result.value}" if now.spf else "spf=not checked"]
            words.append("dkim=" + (",".join(r.result.value for r in now.dkim) or "none"))
            words.append(f"dmarc={now.dmarc.result.value}")
            words.append(f"arc={now.arc.result.value}")
            listed = [r for r in now.relays if r.dnsbl is not None and r.dnsbl.listed]
            if listed:
                words.append(f"{len(listed)} relay(s) listed")
            parts.append("now: " + " ".join(words))
        changed = [c for c in self.changes if c.changed]
        parts.append(f"{len(changed)} change{'s' * (len(changed) != 1)} since delivery")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "hops": [h.to_dict() for h in self.hops],
            "boundary": self.boundary.to_dict(),
            "headers": [h.to_dict() for h in self.headers],
            "reverify": self.reverification.to_dict() if self.reverification else None,
            "changes": [c.to_dict() for c in self.changes],
        }


async def analyze_message(
    message: Message,
    resolver: Resolver | None,
    *,
    trusted_hosts: Sequence[str] = (),
    ip: IPAddress | str | None = None,
    helo: str | None = None,
    mail_from: str | None = None,
    dns_lists: Iterable[DNSList] = (),
    clock: Callable[[], float] = time.time,
) -> Analysis:
    """The whole analysis; without a resolver nothing is re-verified (offline reading)."""
    hops = read_hops(message, now=clock())
    boundary, hops = find_boundary(hops, trusted_hosts, topmost_authserv_id(message))
    boundary_field = None
    if boundary.hop is not None:
        # Fields the boundary hop added sit around its own Received field: just below it is
        # where receivers (Gmail, Postfix milters, mailwarden) put Authentication-Results.
        # What lies below the Received field of the hop before it came from outside.
        received = received_field_positions(message)
        entry = next(h for h in hops if h.index == boundary.hop)
        older = entry.position + 1
        boundary_field = received[older] if older < len(received) else len(message.fields)
    trusted = boundary.trusted_names if boundary.method is not BoundaryMethod.TOPMOST else ()
    recorded = recorded_results(message, trusted, boundary_field)
    now: Reverification | None = None
    changes: list[Change] = []
    if resolver is not None:
        address = parse_ip(ip) if isinstance(ip, str) else ip
        source = "option" if address is not None else "boundary"
        if address is None:
            address = boundary.ip
            source = "boundary" if address is not None else "none"
        client_helo = helo if helo is not None else boundary.helo
        now = await reverify(
            message,
            resolver,
            ip=address,
            ip_source=source,
            helo=client_helo,
            mail_from=mail_from
            if mail_from is not None
            else envelope_sender(message, recorded, boundary_field),
            hops=hops,
            dns_lists=dns_lists,
            clock=clock,
        )
        changes = compare(recorded, now)
    headers = explain_headers(message, trusted, now.dkim if now else (), boundary_field)
    return Analysis(tuple(hops), boundary, tuple(headers), now, tuple(changes))
