"""Symbols from the authentication verdicts (SPF, DKIM, DMARC, ARC), for the policy.

The verdicts are read through small protocols (their `result` values are RFC 8601 words), so
the policy depends on no protocol's internals and never re-runs a check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from mailwarden.symbols import Symbol

__all__ = ["arc_symbols", "dkim_symbols", "dmarc_symbols", "spf_symbols"]


class _HasResult(Protocol):
    @property
    def result(self) -> object: ...


class SPFLike(_HasResult, Protocol):
    @property
    def domain(self) -> str: ...

    @property
    def reason(self) -> str: ...


class DKIMLike(_HasResult, Protocol):
    @property
    def domain(self) -> str: ...

    @property
    def reason(self) -> str: ...


class DMARCLike(_HasResult, Protocol):
    @property
    def domain(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def disposition(self) -> object: ...

    @property
    def policy(self) -> object: ...


def _word(value: object) -> str:
    """The RFC word of a result enum or string ("pass", "fail", ...)."""
    if isinstance(value, str):  # a str, or a StrEnum whose value it is: no .value to read
        return value.lower()
    return str(getattr(value, "value", value)).lower()


def spf_symbols(mailfrom: SPFLike | None, helo: SPFLike | None = None) -> list[Symbol]:
    """SPF_<RESULT> for MAIL FROM; SPF_HELO_PASS / SPF_HELO_FAIL for the HELO identity."""
    out: list[Symbol] = []
    if mailfrom is not None:
        word = _word(mailfrom.result)
        out.append(Symbol(f"SPF_{word.upper()}", 0.0, f"{mailfrom.domain}: {mailfrom.reason}"))
    if helo is not None and _word(helo.result) in ("pass", "fail"):
        word = _word(helo.result)
        out.append(Symbol(f"SPF_HELO_{word.upper()}", 0.0, f"{helo.domain}: {helo.reason}"))
    return out


_DKIM_NAMES = {
    "pass": "DKIM_VALID",
    "fail": "DKIM_INVALID",
    "neutral": "DKIM_PERMERROR",
    "permerror": "DKIM_PERMERROR",
    "temperror": "DKIM_TEMPERROR",
    "policy": "DKIM_POLICY",
}


def dkim_symbols(results: Sequence[DKIMLike]) -> list[Symbol]:
    """One symbol per kind of DKIM outcome (a valid signature outweighs broken ones)."""
    if not results:
        return [Symbol("DKIM_NONE", 0.0, "no DKIM signature")]
    out: dict[str, Symbol] = {}
    for result in results:
        name = _DKIM_NAMES.get(_word(result.result))
        if name is not None and name not in out:
            out[name] = Symbol(name, 0.0, f"d={result.domain}: {result.reason}")
    return list(out.values())


def dmarc_symbols(result: DMARCLike | None) -> list[Symbol]:
    """DMARC_PASS, DMARC_POLICY_<policy> for a fail, or the error/none symbol."""
    if result is None:
        return []
    word = _word(result.result)
    detail = f"{result.domain}: {result.reason}"
    if word == "pass":
        return [Symbol("DMARC_PASS", 0.0, detail)]
    if word == "fail":
        policy = _word(result.disposition)
        return [Symbol(f"DMARC_POLICY_{policy.upper()}", 0.0, detail)]
    if not getattr(result, "evaluated", True):
        return [Symbol("DMARC_NOT_EVALUATED", 0.0, detail)]
    return [Symbol(f"DMARC_{word.upper()}", 0.0, detail)]


def arc_symbols(result: _HasResult | None, *, trusted_pass: bool = False) -> Iterable[Symbol]:
    """ARC_PASS / ARC_FAIL, and ARC_TRUSTED_PASS when a trusted sealer's chain passed."""
    if result is None:
        return []
    word = _word(result.result)
    out = []
    if word in ("pass", "fail"):
        out.append(Symbol(f"ARC_{word.upper()}", 0.0, ""))
    if trusted_pass:
        out.append(Symbol("ARC_TRUSTED_PASS", 0.0, "a trusted sealer's chain passed"))
    return out
