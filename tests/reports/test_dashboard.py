"""The dashboard's reports view: pass rates per day, failing sources, this week's changes,
and SVG that is well-formed and escapes what reporters wrote."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tests.reports.helpers import DAY, T0

from mailwarden.reports import AuthResult, ImportedRow, ReportRow, SQLiteStore
from mailwarden.reports.dashboard import (
    changes,
    failing_sources,
    failing_sources_svg,
    pass_rate_svg,
    pass_rates,
    reports_view,
)


def row(end: int, ip: str, count: int, passed: bool, domain: str = "a.example") -> ImportedRow:
    result = "pass" if passed else "fail"
    spf = (AuthResult("other.example", "fail"),)
    return ImportedRow(
        "R <&> Inc",
        f"id{end}{ip}",
        end - DAY + 1,
        end,
        domain,
        ReportRow(ip, count, "none", result, result, domain, spf_results=spf),
    )


ROWS = [
    row(T0 + DAY - 1, "192.0.2.1", 90, True),
    row(T0 + DAY - 1, "203.0.113.9", 10, False),
    row(T0 + 9 * DAY - 1, "192.0.2.1", 50, True),
    row(T0 + 9 * DAY - 1, "198.51.100.5", 50, False),  # new this week, failing
    row(T0 + 9 * DAY - 1, "203.0.113.9", 5, False),
    row(T0 + 9 * DAY - 1, "192.0.2.77", 5, True, "b.example"),
]


def test_pass_rates_per_domain_and_day() -> None:
    rates = pass_rates(ROWS)
    assert list(rates) == ["a.example", "b.example"]
    assert [(r.day, r.messages, r.passed) for r in rates["a.example"]] == [
        (T0, 100, 90),
        (T0 + 8 * DAY, 105, 50),
    ]


def test_failing_sources_and_this_weeks_changes() -> None:
    failing = failing_sources(ROWS)
    assert [(s.address, s.failed, s.cause) for s in failing] == [
        ("198.51.100.5", 50, "spoofer"),
        ("203.0.113.9", 15, "spoofer"),
    ]
    found = {(c.kind, c.domain, c.source) for c in changes(ROWS, T0 + 9 * DAY)}
    assert ("new_source", "a.example", "198.51.100.5") in found
    assert ("new_source", "b.example", "192.0.2.77") in found
    assert ("pass_rate", "a.example", "") in found  # 90 % -> 48 %
    assert not any(source == "192.0.2.1" for _, _, source in found)


def test_the_svg_is_well_formed_and_escaped() -> None:
    for svg in (
        pass_rate_svg(pass_rates(ROWS)),
        pass_rate_svg({}),
        failing_sources_svg(failing_sources(ROWS)),
        failing_sources_svg([]),
    ):
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "<script" not in svg
    assert "R &lt;&amp;&gt; Inc" in failing_sources_svg(failing_sources(ROWS))


async def test_the_view_from_the_store(tmp_path: Path) -> None:
    from mailwarden.reports import AggregateReport, PolicyPublished

    store = SQLiteStore(tmp_path / "r.sqlite3")
    report = AggregateReport(
        "R",
        "r@r.example",
        "x",
        T0,
        T0 + DAY - 1,
        PolicyPublished("a.example"),
        tuple(r.row for r in ROWS[:2]),
    )
    await store.add_aggregate(report, "f", T0)
    html = await reports_view(store, T0 + 2 * DAY)
    await store.close()
    ET.fromstring(html.replace("—", "-"))  # well-formed
    assert html.count("<svg") == 2
    assert "203.0.113.9" in html
