"""What the reports others sent say about a domain: per source (address, reverse name,
reporter) the volume, alignment and disposition, and the failing sources grouped by their
likely cause.

    forwarder         your DKIM signature is there but broke on the way, or a forwarder
                      or list (override reason) passed it on: fix nothing, use ARC/SRS
    unsigned_service  authenticated as someone else (SPF or DKIM of another domain) with no
                      signature of yours: a service sending as you, to be signed or dropped
    spoofer           nothing authenticates: someone else using your name
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import ReportRow
from .store import ImportedRow

__all__ = ["CAUSES", "Source", "Summary", "cause_of", "summarize"]

CAUSES = ("forwarder", "unsigned_service", "spoofer")


def _related(a: str, b: str) -> bool:
    """The same domain, or one below the other (relaxed alignment without DNS)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return bool(a and b) and (a == b or a.endswith("." + b) or b.endswith("." + a))


def cause_of(row: ReportRow) -> str:
    """The likely cause of a failing row (see the module's table)."""
    if any(kind in ("mailing_list", "trusted_forwarder") for kind, _ in row.reasons):
        return "forwarder"
    ours = [d for d in row.dkim_results if _related(d.domain, row.header_from)]
    if ours:  # our signature, but it did not verify: changed on the way
        return "forwarder"
    others_pass = any(d.result == "pass" for d in row.dkim_results) or any(
        s.result == "pass" for s in row.spf_results
    )
    return "unsigned_service" if others_pass else "spoofer"


@dataclass
class Source:
    address: str
    reverse_name: str
    reporter: str
    messages: int = 0
    passed: int = 0
    spf_aligned: int = 0
    dkim_aligned: int = 0
    dispositions: Counter[str] = field(default_factory=Counter)
    header_from: set[str] = field(default_factory=set)
    causes: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return self.messages - self.passed

    @property
    def cause(self) -> str | None:
        return self.causes.most_common(1)[0][0] if self.causes else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "reverse_name": self.reverse_name or None,
            "reporter": self.reporter,
            "messages": self.messages,
            "passed": self.passed,
            "failed": self.failed,
            "spf_aligned": self.spf_aligned,
            "dkim_aligned": self.dkim_aligned,
            "dispositions": dict(sorted(self.dispositions.items())),
            "header_from": sorted(self.header_from),
            "cause": self.cause,
        }


@dataclass
class Summary:
    domain: str
    reports: int
    sources: list[Source]

    @property
    def messages(self) -> int:
        return sum(s.messages for s in self.sources)

    @property
    def passed(self) -> int:
        return sum(s.passed for s in self.sources)

    def failing(self) -> dict[str, list[Source]]:
        groups: dict[str, list[Source]] = {cause: [] for cause in CAUSES}
        for source in self.sources:
            if source.failed and source.cause:
                groups[source.cause].append(source)
        for group in groups.values():
            group.sort(key=lambda s: (-s.failed, s.address, s.reporter))
        return groups

    def to_dict(self) -> dict[str, Any]:
        messages = self.messages
        return {
            "domain": self.domain,
            "reports": self.reports,
            "messages": messages,
            "passed": self.passed,
            "pass_rate": round(self.passed / messages, 4) if messages else None,
            "sources": [s.to_dict() for s in self.sources],
            "failing": {
                cause: [s.to_dict() for s in group] for cause, group in self.failing().items()
            },
        }


def summarize(
    domain: str, rows: Sequence[ImportedRow], reverse: Mapping[str, str] | None = None
) -> Summary:
    """Per source (address, reporter) over the imported rows of `domain`."""
    reverse = reverse or {}
    sources: dict[tuple[str, str], Source] = {}
    reports = {(r.reporter, r.report_id) for r in rows}
    by_source: defaultdict[tuple[str, str], list[ReportRow]] = defaultdict(list)
    for item in rows:
        by_source[(item.row.source_ip, item.reporter)].append(item.row)
    for (address, reporter), items in by_source.items():
        source = Source(address, reverse.get(address, ""), reporter)
        for row in items:
            source.messages += row.count
            source.passed += row.count if row.passed else 0
            source.spf_aligned += row.count if row.spf == "pass" else 0
            source.dkim_aligned += row.count if row.dkim == "pass" else 0
            source.dispositions[row.disposition or "none"] += row.count
            if row.header_from:
                source.header_from.add(row.header_from)
            if not row.passed:
                source.causes[cause_of(row)] += row.count
        sources[(address, reporter)] = source
    ordered = sorted(sources.values(), key=lambda s: (-s.messages, s.address, s.reporter))
    return Summary(domain, len(reports), ordered)
