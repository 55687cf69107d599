"""The dashboard's reports view: data from the imported reports, drawn as SVG on the server.

`pass_rates` gives each domain's DMARC pass rate per day; `failing_sources` the sources that
fail, with their likely cause; `changes` what is new this week against the weeks before (new
sources, sources that started failing, pass rates that moved). `pass_rate_svg`,
`failing_sources_svg` and `reports_view` render them (no script, no external resources), for
the HTTP front end to mount.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from .store import ImportedRow, ReportStore
from .summary import Source, summarize

__all__ = [
    "Change",
    "DayRate",
    "changes",
    "failing_sources",
    "failing_sources_svg",
    "pass_rate_svg",
    "pass_rates",
    "reports_view",
]

DAY = 86400
WEEK = 7 * DAY


@dataclass(frozen=True, slots=True)
class DayRate:
    day: int  # the UTC day's start
    messages: int
    passed: int

    @property
    def rate(self) -> float:
        return self.passed / self.messages if self.messages else 0.0


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "new_source", "now_failing", "pass_rate"
    domain: str
    detail: str
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "domain": self.domain, "source": self.source or None,
                "detail": self.detail}  # fmt: skip


def pass_rates(rows: Sequence[ImportedRow]) -> dict[str, list[DayRate]]:
    """Per domain, per UTC day (by the end of each report's period): messages and passes."""
    totals: defaultdict[str, dict[int, list[int]]] = defaultdict(dict)
    for item in rows:
        day = item.end // DAY * DAY
        counts = totals[item.domain].setdefault(day, [0, 0])
        counts[0] += item.row.count
        counts[1] += item.row.count if item.row.passed else 0
    return {
        domain: [DayRate(day, m, p) for day, (m, p) in sorted(days.items())]
        for domain, days in sorted(totals.items())
    }


def failing_sources(rows: Sequence[ImportedRow], *, limit: int = 20) -> list[Source]:
    """The sources failing most, over every domain."""
    sources: list[Source] = []
    for domain in sorted({r.domain for r in rows}):
        summary = summarize(domain, [r for r in rows if r.domain == domain])
        sources += [s for s in summary.sources if s.failed]
    sources.sort(key=lambda s: (-s.failed, s.address, s.reporter))
    return sources[:limit]


def changes(rows: Sequence[ImportedRow], now: float) -> list[Change]:
    """This week against the weeks before: new sources, sources newly failing, and domains
    whose pass rate moved by ten points or more."""
    week_start = now - WEEK
    before = [r for r in rows if r.end < week_start]
    this_week = [r for r in rows if r.end >= week_start]
    seen = {(r.domain, r.row.source_ip) for r in before}
    failed_before = {(r.domain, r.row.source_ip) for r in before if not r.row.passed}
    out: list[Change] = []
    counted: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in this_week:
        counts = counted[(r.domain, r.row.source_ip)]
        counts[0] += r.row.count
        counts[1] += 0 if r.row.passed else r.row.count
    for (domain, source), (messages, failed) in sorted(counted.items()):
        if (domain, source) not in seen:
            out.append(
                Change("new_source", domain, f"{messages} messages, {failed} failing", source)
            )
        elif failed and (domain, source) not in failed_before:
            out.append(Change("now_failing", domain, f"{failed} of {messages} failing", source))
    old_rates = _rates(before)
    for domain, (messages, passed) in sorted(_rates(this_week).items()):
        if domain in old_rates and messages:
            old_m, old_p = old_rates[domain]
            old, new = old_p / old_m, passed / messages
            if abs(new - old) >= 0.10:
                out.append(Change("pass_rate", domain, f"pass rate {old:.0%} -> {new:.0%}"))
    return out


def _rates(rows: Sequence[ImportedRow]) -> dict[str, tuple[int, int]]:
    totals: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        totals[r.domain][0] += r.row.count
        totals[r.domain][1] += r.row.count if r.row.passed else 0
    return {domain: (m, p) for domain, (m, p) in totals.items() if m}


_COLOURS = ("#1b6ac9", "#c9501b", "#2a9d3a", "#8a3ac9", "#c9a21b", "#1bb5c9")


def pass_rate_svg(series: dict[str, list[DayRate]], *, width: int = 640, height: int = 240) -> str:
    """One line per domain: the DMARC pass rate per day, 0-100 %."""
    left, right, top, bottom = 40, 150, 10, 30
    days = sorted({d.day for rates in series.values() for d in rates})
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="DMARC pass rate per day">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#ccc"/>',
    ]
    for pct in (0, 50, 100):
        y = top + plot_h * (1 - pct / 100)
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{pct}%</text>')  # fmt: skip
    if not days:
        parts.append(f'<text x="{left + 10}" y="{top + 20}" font-size="12">no reports</text>')
        return "".join(parts) + "</svg>"
    span = max(1, days[-1] - days[0])

    def x_of(day: int) -> float:
        return left + (plot_w * (day - days[0]) / span if len(days) > 1 else plot_w / 2)

    for index, (domain, rates) in enumerate(sorted(series.items())):
        colour = _COLOURS[index % len(_COLOURS)]
        points = " ".join(f"{x_of(r.day):.1f},{top + plot_h * (1 - r.rate):.1f}" for r in rates)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        for r in rates:
            parts.append(
                f'<circle cx="{x_of(r.day):.1f}" cy="{top + plot_h * (1 - r.rate):.1f}" r="2.5" '
                f'fill="{colour}"><title>{escape(domain)}: {r.rate:.0%} of {r.messages}</title>'
                "</circle>"
            )
        parts.append(f'<text x="{width - right + 8}" y="{top + 14 + 14 * index}" font-size="11" '
                     f'fill="{colour}">{escape(domain[:24])}</text>')  # fmt: skip
    return "".join(parts) + "</svg>"


def failing_sources_svg(sources: Sequence[Source], *, width: int = 640) -> str:
    """Horizontal bars: failing messages per source, labelled with the likely cause."""
    bar, gap, label = 16, 6, 260
    height = max(40, len(sources) * (bar + gap) + 20)
    most = max((s.failed for s in sources), default=1) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Failing sources">'
    ]
    if not sources:
        parts.append('<text x="10" y="24" font-size="12">no failing sources</text>')
    for index, source in enumerate(sources):
        y = 10 + index * (bar + gap)
        length = (width - label - 60) * source.failed / most
        name = source.reverse_name or source.address
        parts.append(
            f'<text x="{label - 6}" y="{y + 12}" font-size="11" text-anchor="end">'
            f"{escape(name[:40])} ({escape(source.cause or '')})</text>"
            f'<rect x="{label}" y="{y}" width="{length:.1f}" height="{bar}" fill="#c9501b">'
            f"<title>{escape(source.address)} via {escape(source.reporter)}: "
            f"{source.failed} failing</title></rect>"
            f'<text x="{label + length + 4:.1f}" y="{y + 12}" font-size="11">{source.failed}</text>'
        )
    return "".join(parts) + "</svg>"


async def reports_view(store: ReportStore, now: float, *, days: int = 30) -> str:
    """The reports view as an HTML fragment: pass rates, failing sources, this week."""
    rows = await store.imported_rows(since=now - days * DAY)
    week = changes(rows, now)
    items = "".join(
        f"<li>{escape(c.domain)}: {escape(c.kind.replace('_', ' '))} "
        f"{escape(c.source)} — {escape(c.detail)}</li>"
        for c in week
    )
    return (
        '<section class="reports"><h2>DMARC reports</h2>'
        f"<h3>Pass rate per day</h3>{pass_rate_svg(pass_rates(rows))}"
        f"<h3>Failing sources</h3>{failing_sources_svg(failing_sources(rows))}"
        f"<h3>This week</h3><ul>{items or '<li>nothing new</li>'}</ul></section>"
    )
