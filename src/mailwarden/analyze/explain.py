"""The authentication header fields in plain words: Authentication-Results (RFC 8601),
Received-SPF (RFC 7208 §9.1), DKIM-Signature (RFC 6376) and ARC sets (RFC 8617)."""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailwarden.arc import ARCError, collect_sets, parse_aar, parse_message_signature, parse_seal
from mailwarden.authres import ParseError, ResInfo
from mailwarden.authres import parse_authentication_results as parse_ar
from mailwarden.dkim import DKIMResult, SignatureError, parse_signature
from mailwarden.message import Message

from .boundary import is_trusted_name

__all__ = ["HeaderExplanation", "describe_resinfo", "explain_headers", "parse_received_spf"]


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
    ours = is_trusted_name(results.authserv_id, trusted) if trusted else None
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
