"""Symbols from the connection-time checks (iprev, HELO, DNS lists), for the policy.

iprev and HELO return typed results with reason codes and no scores: their symbols are named
here (IPREV_<RESULT>, HELO_<FINDING>). A DNS list names the symbol of each answer as its
definition says, with the score the definition gives it: `ListedSymbol` marks that score as
the list's, the default under [policy.scores] and over DEFAULT_SCORES. Only the policy scores
(`PolicyConfig.score_of`). Results are read through small protocols, so the policy depends on
no protocol's types.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailwarden.symbols import Symbol

__all__ = ["HELO_SYMBOLS", "ListedSymbol", "dnsbl_symbols", "helo_symbols", "iprev_symbols"]


class IprevLike(Protocol):
    """An iprev result (RFC 8601 §3): `result` is its RFC word."""

    @property
    def result(self) -> object: ...

    @property
    def reason(self) -> str: ...

    @property
    def name(self) -> str | None: ...


class FindingLike(Protocol):
    """One HELO finding: `code` is its reason code ("not-fqdn", "forged", ...)."""

    @property
    def code(self) -> object: ...

    @property
    def detail(self) -> str: ...


class HeloLike(Protocol):
    @property
    def findings(self) -> Sequence[FindingLike]: ...


class ListReportLike(Protocol):
    """A DNS-list report (or one list's result): symbols named and weighed by definitions."""

    @property
    def symbols(self) -> Sequence[Symbol]: ...


@dataclass(frozen=True, slots=True)
class ListedSymbol(Symbol):
    """A DNS list's symbol: named, and weighed (`score`), by the list's definition (built-in
    or [[dnsbl.lists]]). The policy gives it that score unless [policy.scores] names it."""


# The symbol of each HELO finding, by its reason code (mailwarden.helo.HeloReason).
HELO_SYMBOLS: dict[str, str] = {
    "bad-syntax": "HELO_BAD_SYNTAX",
    "bare-ip": "HELO_BARE_IP",
    "not-fqdn": "HELO_NOT_FQDN",
    "ip-literal": "HELO_IP_LITERAL",
    "ip-literal-mismatch": "HELO_IP_LITERAL_MISMATCH",
    "forged": "HELO_FORGED",
    "no-resolve": "HELO_NORESOLVE",
    "dns-error": "HELO_TEMPERROR",
    "mismatch-ptr": "HELO_MISMATCH_PTR",
    "matches-client": "HELO_MATCHES_CLIENT",
    "matches-ptr": "HELO_MATCHES_PTR",
}


def _word(value: object) -> str:
    """The word of a result or reason enum, or of a string."""
    return str(getattr(value, "value", value)).lower()


def iprev_symbols(result: IprevLike | None) -> list[Symbol]:
    """IPREV_PASS, IPREV_FAIL, IPREV_TEMPERROR or IPREV_PERMERROR, detailed by the reason
    (or, for a pass, the confirmed name)."""
    if result is None:
        return []
    word = _word(result.result)
    return [Symbol(f"IPREV_{word.upper()}", 0.0, result.reason or (result.name or ""))]


def helo_symbols(result: HeloLike | None) -> list[Symbol]:
    """One HELO_* symbol per finding, in the order found."""
    if result is None:
        return []
    out = []
    for finding in result.findings:
        code = _word(finding.code)
        name = HELO_SYMBOLS.get(code, "HELO_" + code.upper().replace("-", "_"))
        out.append(Symbol(name, 0.0, finding.detail))
    return out


def dnsbl_symbols(reports: Iterable[ListReportLike | None]) -> list[Symbol]:
    """The symbols of every listing in these reports (DNS-list reports, or single lists'
    results), as `ListedSymbol`s: the score each definition gives is their default."""
    return [
        ListedSymbol(s.name, s.score, s.detail)
        for report in reports
        if report is not None
        for s in report.symbols
    ]
