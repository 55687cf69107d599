"""What changed since delivery: the results our organisation recorded then (trusted
Authentication-Results) against the checks run now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailwarden.authres import AuthenticationResults, ParseError, ResInfo
from mailwarden.authres import parse_authentication_results as parse_ar
from mailwarden.dkim import DKIMReason, DKIMResult, DKIMStatus
from mailwarden.dmarc import DMARCReason, DMARCResult, DMARCStatus
from mailwarden.message import Message

from .boundary import is_trusted_name
from .reverification import Reverification

__all__ = ["Change", "compare", "recorded_results"]


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
        chosen = [f for f in fields if is_trusted_name(f.authserv_id, trusted_names)]
    else:
        chosen = fields[:1]
    return [info for f in chosen for info in f.results]


def _dkim_note(then: str, now: DKIMResult) -> str:
    if then == "pass" and now.result is DKIMStatus.PASS:
        return ""
    if then == "pass" and now.reason_code is DKIMReason.NO_KEY:
        return "the key was removed since (rotated away): old signatures can no longer be checked"
    if then == "pass" and now.result is DKIMStatus.FAIL:
        return "the key changed since, or the message was altered after it was received"
    if now.result is DKIMStatus.TEMPERROR:
        return "DNS trouble now: try again"
    return now.reason if then != now.result.value else ""


def _dmarc_note(then: str, now: DMARCResult, earlier: Sequence[Change]) -> str:
    """Why the DMARC result differs from the recorded one: its own record first (gone,
    unusable), DNS trouble, then the SPF and DKIM changes it follows from, if there are any."""
    if not now.evaluated:
        return now.reason  # not checked now: nothing to compare, but say why
    if then == now.result.value:
        return ""
    if now.result is DMARCStatus.TEMPERROR:
        return "DNS trouble now: try again"
    if now.reason_code is DMARCReason.NO_RECORD:
        return f"the DMARC record of {now.domain} is gone since (no record now)"
    if now.reason_code is DMARCReason.NO_POLICY:
        return f"the DMARC record changed since: {now.reason}"
    if any(c.changed for c in earlier if c.method in ("spf", "dkim")):
        return "follows from the SPF and DKIM changes above"
    return "no SPF or DKIM result changed: the DMARC record (its alignment modes) changed since"


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
    # A DMARC result that could not be evaluated now is not compared (None: not checked now).
    dmarc_now = now.dmarc.result.value if now.dmarc.evaluated else None
    for method, value in (("dmarc", dmarc_now), ("arc", now.arc.result.value)):
        then = next((r for r in recorded if r.method.lower() == method), None)
        subject = (
            now.dmarc.domain or "-"
            if method == "dmarc"
            else f"{now.arc.instances} set{'s' * (now.arc.instances != 1)}"
        )
        note = ""
        if method == "dmarc" and (then is not None or value is None):
            note = _dmarc_note(then.result.lower() if then else "", now.dmarc, changes)
        elif then is not None and then.result.lower() != value:
            note = now.arc.reason
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
