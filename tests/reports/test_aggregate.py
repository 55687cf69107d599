"""Aggregate reports out: every report we produce validates against the RFC 9990 schema,
re-imports to the same numbers, splits under its size cap, and keeps its names."""

from __future__ import annotations

import gzip
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.reports.conftest import validate
from tests.reports.helpers import T0, evaluation, spoof

from mailwarden.dmarc import parse_record
from mailwarden.reports import AggregateReport, Disposition, DKIMAuth, MessageKind
from mailwarden.reports.aggregate import (
    NAMESPACE,
    file_name,
    gzipped,
    policy_published,
    report_id,
    rows_of,
    split_report,
    to_xml,
)
from mailwarden.reports.incoming import parse_aggregate, read_reports


def report_of(
    evaluations: list[Any], record: str = "v=DMARC1; p=reject; sp=none"
) -> AggregateReport:
    return AggregateReport(
        org_name="mx.example.net",
        email="dmarc-reports@reports.example.net",
        report_id=report_id("reports.example.net", "a.example", T0),
        begin=T0,
        end=T0 + 86399,
        policy=policy_published(parse_record(record), "a.example", "treewalk"),
        rows=rows_of(evaluations),
        version="1.0",
        extra_contact_info="https://example.net/dmarc",
        generator="mailwarden test",
    )


def test_rows_aggregate_per_source_and_outcome() -> None:
    rows = rows_of([evaluation(), evaluation(time=T0 + 9), spoof(), spoof(source_ip="203.0.113.7")])
    assert [(r.source_ip, r.count, r.disposition) for r in rows] == [
        ("192.0.2.10", 2, "pass"),
        ("203.0.113.66", 1, "reject"),
        ("203.0.113.7", 1, "reject"),
    ]
    assert rows[0].dkim_results[0].selector == "sel"
    assert rows[1].spf_results[0].result == "softfail"


def test_the_report_validates_and_carries_rfc9990_fields(schema: Any) -> None:
    evaluations = [
        evaluation(),
        spoof(override="local_policy", override_comment="quarantined <instead> & kept"),
        evaluation(source_ip="2001:db8::5", dkim=(), dkim_aligned=False, spf_scope="helo"),
    ]
    xml = to_xml(report_of(evaluations, "v=DMARC1; p=quarantine; np=reject; fo=1:d; t=y"))
    validate(schema, xml)
    text = xml.decode()
    assert f'xmlns="{NAMESPACE}"' in text
    for element in (
        "<np>reject</np>",
        "<testing>y</testing>",
        "<fo>1:d</fo>",
        "<discovery_method>treewalk</discovery_method>",
        "<generator>",
    ):
        assert element in text
    assert "<pct>" not in text  # not in RFC 9990


def test_hostile_text_still_validates(schema: Any) -> None:
    weird = spoof(override="other", override_comment="\x00\x1b]0;evil\x07 \ud800 </comment>")
    dkim = tuple(DKIMAuth(f"d{i}.example", "", "fail", "\x01") for i in range(150))
    xml = to_xml(report_of([weird, evaluation(dkim=dkim)]))
    validate(schema, xml)
    (found,) = read_reports(xml)
    assert found.report is not None
    assert max(len(row.dkim_results) for row in found.report.rows) == 100  # RFC 9990 cap


def test_round_trip_to_the_same_numbers(schema: Any) -> None:
    evaluations = [evaluation()] * 5 + [spoof()] * 3 + [evaluation(source_ip="192.0.2.99")]
    report = report_of(evaluations)
    payload = gzipped(to_xml(report))
    validate(schema, gzip.decompress(payload))
    (found,) = read_reports(payload, "x.xml.gz")
    back = found.report
    assert isinstance(back, AggregateReport)
    assert back.namespace == NAMESPACE
    assert (back.report_id, back.begin, back.end, back.domain) == (
        report.report_id,
        report.begin,
        report.end,
        "a.example",
    )
    assert back.messages == 9
    assert back.rows == report.rows  # every row, every field


def test_names_and_bytes_are_stable() -> None:
    report = report_of([evaluation(), spoof()])
    assert gzipped(to_xml(report)) == gzipped(to_xml(report_of([evaluation(), spoof()])))
    assert report_id("r.example", "a.example", T0) == report_id("r.example", "a.example", T0)
    assert report_id("r.example", "a.example", T0) != report_id("r.example", "a.example", T0 + 1)
    assert report_id("r.example", "a.example", T0, 2).endswith("-2")
    name = file_name("r.example", "a.example", T0, T0 + 86399, "abc")
    assert name == f"r.example!a.example!{T0}!{T0 + 86399}!abc.xml.gz"


def test_a_large_report_is_split_under_the_cap(schema: Any) -> None:
    evaluations = [evaluation(source_ip=f"10.{i // 250}.{i % 250}.1") for i in range(3000)]
    report = report_of(evaluations)
    cap = 8000
    parts = split_report(report, cap)
    assert len(parts) > 1
    assert sum(p.messages for p in parts) == 3000
    for part in parts:
        xml = to_xml(part)
        validate(schema, xml)
        assert len(gzipped(xml)) <= cap
    assert split_report(report, 10**8) == [report]


addresses = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
texts = st.text(max_size=30)


@st.composite
def evaluations_(draw: st.DrawFn) -> Any:
    passed = draw(st.booleans())
    return evaluation(
        source_ip=draw(addresses),
        header_from=draw(st.sampled_from(["a.example", "sub.a.example", "ÿ.a.example"])),
        envelope_from=draw(st.sampled_from(["", "b.example", "a.example"])),
        result="pass" if passed else "fail",
        dkim_aligned=passed and draw(st.booleans()),
        spf_aligned=passed,
        disposition=draw(st.sampled_from(list(Disposition))),
        override=draw(st.sampled_from(["", "local_policy", "trusted_forwarder"])),
        override_comment=draw(texts),
        spf_domain=draw(st.sampled_from(["", "b.example"])),
        spf_result=draw(st.sampled_from(["pass", "fail", "none", "softfail", "temperror"])),
        dkim=tuple(
            DKIMAuth(
                draw(st.sampled_from(["a.example", "c.example"])),
                draw(texts),
                draw(st.sampled_from(["pass", "fail", "neutral", "permerror"])),
                draw(texts),
            )
            for _ in range(draw(st.integers(0, 3)))
        ),
        kind=MessageKind.MESSAGE,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(evaluations_(), min_size=1, max_size=20))
def test_any_recorded_traffic_gives_a_valid_report_that_reads_back(
    schema: Any, items: list[Any]
) -> None:
    report = report_of(items)
    xml = to_xml(report)
    validate(schema, xml)
    back, recovered = parse_aggregate(xml)
    assert not recovered
    assert back.messages == len(items)
    assert [(r.source_ip, r.count) for r in back.rows] == [
        (r.source_ip, r.count) for r in report.rows
    ]
