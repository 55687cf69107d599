"""Result headers: Received-SPF (RFC 7208 §9.1), and the result in words (`describe`) that
the spf clause of Authentication-Results (mailwarden.authres) carries as its comment."""

from __future__ import annotations

import re

from .result import SPFResult, SPFStatus

_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def quote_value(value: str) -> str:
    """A dot-atom as it is, anything else as an RFC 5322 quoted-string."""
    if _DOT_ATOM.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def describe(result: SPFResult) -> str:
    """One sentence on what the result means, in the words of RFC 7208 §9.1's examples."""
    meaning = _MEANINGS.get(result.result)
    if meaning is None:
        return f"error in processing during lookup of {result.sender}: {result.reason}"
    return meaning.format(who=result.sender, ip=result.ip)


_MEANINGS = {  # a dict, not a chain of enum comparisons: this is on every message's path
    SPFStatus.PASS: "domain of {who} designates {ip} as permitted sender",
    SPFStatus.FAIL: "domain of {who} does not designate {ip} as permitted sender",
    SPFStatus.SOFTFAIL: "domain of transitioning {who} does not designate {ip} as permitted sender",
    SPFStatus.NEUTRAL: "{ip} is neither permitted nor denied by domain of {who}",
    SPFStatus.NONE: "domain of {who} does not provide an SPF record",
}


def received_spf(result: SPFResult, receiver: str) -> str:
    """The complete Received-SPF header field (without line ending)."""
    pairs = [
        ("receiver", receiver),
        ("client-ip", str(result.ip)),
        ("envelope-from", result.sender),
        ("helo", result.helo),
        ("identity", result.identity.value),
    ]
    if result.mechanism:
        pairs.append(("mechanism", result.mechanism))
    if result.result in (SPFStatus.PERMERROR, SPFStatus.TEMPERROR):
        pairs.append(("problem", result.reason))
    fields = "; ".join(f"{key}={quote_value(value)}" for key, value in pairs if value)
    return (
        f"Received-SPF: {result.result.value} ({_comment(receiver)}: "
        f"{_comment(describe(result))}) {fields};"
    )
