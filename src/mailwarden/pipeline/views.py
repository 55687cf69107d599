"""The JSON of the connection-time checks with the policy's symbols and scores.

A check's own `to_dict()` says what it found (result, reason codes, the DNS lists' symbol
names); naming (iprev, HELO) and scoring symbols is the policy's work. These views add the
policy's symbols where the commands have always shown them (`symbol`, `symbols`, `score`,
`rejected_by`), for every front end: `mailwarden check` (through `MessageVerdict.to_dict`),
`iprev`, `helo`, `dnsbl` and `analyze`. `score` gives a symbol its score: `policy_scorer`
asks the policy, a verdict uses the scores it counted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from mailwarden.dnsbl import DNSListReport, ListResult
from mailwarden.helo import HeloResult
from mailwarden.iprev import IprevResult
from mailwarden.policy import (
    ListedSymbol,
    PolicyConfig,
    dnsbl_symbols,
    helo_symbols,
    iprev_symbols,
)
from mailwarden.symbols import Symbol

__all__ = ["Scorer", "dnsbl_dict", "helo_dict", "iprev_dict", "list_result_dict", "policy_scorer"]

Scorer = Callable[[Symbol], float]


def policy_scorer(policy: PolicyConfig) -> Scorer:
    """Scores as `policy` gives them ([policy.scores], list definitions, DEFAULT_SCORES)."""
    return lambda s: policy.score_of(s.name, s.score, listed=isinstance(s, ListedSymbol))


def _scored(symbols: Iterable[Symbol], score: Scorer) -> list[dict[str, Any]]:
    return [{"name": s.name, "score": score(s), "detail": s.detail} for s in symbols]


def iprev_dict(result: IprevResult, score: Scorer) -> dict[str, Any]:
    """The iprev result, with its symbol (IPREV_<RESULT>) as `symbol`."""
    data = result.to_dict()
    data["symbol"] = _scored(iprev_symbols(result), score)[0]
    return data


def helo_dict(result: HeloResult, score: Scorer, hard_reject: Collection[str]) -> dict[str, Any]:
    """The HELO findings, with their symbols, their total score, and `rejected_by`: the first
    of them the policy refuses on alone (`hard_reject`), else None."""
    data = result.to_dict()
    codes = data.pop("reason_codes")
    symbols = helo_symbols(result)
    scored = _scored(symbols, score)
    data["symbols"] = scored
    data["reason_codes"] = codes
    data["score"] = sum(s["score"] for s in scored)
    data["rejected_by"] = next((s.name for s in symbols if s.name in hard_reject), None)
    return data


def list_result_dict(result: ListResult, score: Scorer) -> dict[str, Any]:
    """One list's answer, its symbols scored."""
    data = result.to_dict()
    data["symbols"] = _scored(dnsbl_symbols([result]), score)
    return data


def dnsbl_dict(report: DNSListReport, score: Scorer) -> dict[str, Any]:
    """Every list's answer about one subject, the symbols scored."""
    data = report.to_dict()
    data["results"] = [list_result_dict(r, score) for r in report.results]
    data["symbols"] = _scored(dnsbl_symbols([report]), score)
    return data
