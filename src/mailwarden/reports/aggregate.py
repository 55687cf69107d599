"""Aggregate reports out (RFC 9990): rows from recorded evaluations, the XML in the
`urn:ietf:params:xml:ns:dmarc-2.0` namespace, splitting under a size cap, gzip, and the
stable names (Report-ID and file name) a re-send keeps.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence

from mailwarden import __version__
from mailwarden.dmarc import DMARCRecord

from .evaluation import MAX_DKIM_RESULTS, Evaluation
from .model import AggregateReport, AuthResult, PolicyPublished, ReportRow

__all__ = [
    "GENERATOR",
    "NAMESPACE",
    "file_name",
    "gzipped",
    "policy_published",
    "report_id",
    "rows_of",
    "split_report",
    "to_xml",
]

NAMESPACE = "urn:ietf:params:xml:ns:dmarc-2.0"
GENERATOR = f"mailwarden {__version__}"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_POLICIES = ("none", "quarantine", "reject")


def policy_published(record: DMARCRecord | None, domain: str, discovery: str) -> PolicyPublished:
    """RFC 9990 §2.1 PolicyPublishedType: what the Policy Domain's record said."""
    if record is None:
        return PolicyPublished(domain, p="none", discovery_method=discovery)

    def tag(name: str) -> str:
        return next((value for key, value in record.tags if key == name), "")

    return PolicyPublished(
        domain=domain,
        p=record.p.value if record.p is not None else "none",
        sp=record.sp.value if record.sp is not None else "",
        np=record.np.value if record.np is not None else "",
        adkim=record.adkim.value if record.has("adkim") else "",
        aspf=record.aspf.value if record.has("aspf") else "",
        discovery_method=discovery if discovery in ("psl", "treewalk") else "",
        fo=":".join(record.fo) if record.has("fo") else "",
        testing="y" if record.testing else "n",
        pct=tag("pct") if record.is_rfc7489 else "",
    )


def rows_of(evaluations: Iterable[Evaluation]) -> tuple[ReportRow, ...]:
    """Evaluations aggregated per source address and outcome (RFC 9990 §2.1 RowType),
    in a stable order: most messages first, then by source."""
    counts: Counter[ReportRow] = Counter()
    for e in evaluations:
        dkim = tuple(
            sorted(
                {AuthResult(d.domain, d.result, d.selector, "", d.human_result) for d in e.dkim},
                key=lambda a: (a.domain, a.selector, a.result, a.human_result),
            )
        )[:MAX_DKIM_RESULTS]
        spf = (AuthResult(e.spf_domain, e.spf_result, "", e.spf_scope),) if e.spf_domain else ()
        key = ReportRow(
            source_ip=e.source_ip,
            count=0,
            disposition=e.disposition.value,
            dkim="pass" if e.dkim_aligned else "fail",
            spf="pass" if e.spf_aligned else "fail",
            header_from=e.header_from,
            envelope_from=e.envelope_from,
            reasons=((e.override, e.override_comment),) if e.override else (),
            dkim_results=dkim,
            spf_results=spf,
        )
        counts[key] += 1
    rows = [_with_count(row, count) for row, count in counts.items()]
    return tuple(sorted(rows, key=lambda r: (-r.count, r.source_ip, repr(r))))


def _with_count(row: ReportRow, count: int) -> ReportRow:
    return ReportRow(
        row.source_ip,
        count,
        row.disposition,
        row.dkim,
        row.spf,
        row.header_from,
        row.envelope_from,
        row.envelope_to,
        row.reasons,
        row.dkim_results,
        row.spf_results,
    )


def report_id(submitter: str, domain: str, begin: int, part: int = 0) -> str:
    """A Report-ID that is the same whenever this report is built again (RFC 9990 §2.1.2:
    a re-sent report keeps it, so the Domain Owner can drop the duplicate)."""
    digest = hashlib.sha256(f"{submitter}|{domain}|{begin}".encode()).hexdigest()[:20]
    return digest if part == 0 else f"{digest}-{part}"


def file_name(submitter: str, domain: str, begin: int, end: int, unique: str) -> str:
    """RFC 9990 §2.5.1: receiver!policy-domain!begin!end!unique-id.xml.gz"""
    return f"{submitter}!{domain}!{begin}!{end}!{unique}.xml.gz"


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _add(parent: ET.Element, name: str, value: str | int | None, *, optional: bool = False) -> None:
    if optional and (value is None or value == ""):
        return
    ET.SubElement(parent, name).text = _text(str(value if value is not None else ""))


def to_xml(report: AggregateReport) -> bytes:
    """The report as RFC 9990 XML (elements in the schema's order, UTF-8)."""
    root = ET.Element("feedback", {"xmlns": NAMESPACE})
    _add(root, "version", report.version or "1.0")
    meta = ET.SubElement(root, "report_metadata")
    _add(meta, "org_name", report.org_name)
    _add(meta, "email", report.email)
    _add(meta, "extra_contact_info", report.extra_contact_info, optional=True)
    _add(meta, "report_id", report.report_id)
    dates = ET.SubElement(meta, "date_range")
    _add(dates, "begin", report.begin)
    _add(dates, "end", report.end)
    for error in report.errors:
        _add(meta, "error", error)
        break  # the schema allows one
    _add(meta, "generator", report.generator or GENERATOR)
    policy = report.policy
    published = ET.SubElement(root, "policy_published")
    _add(published, "domain", policy.domain)
    _add(published, "p", policy.p if policy.p in _POLICIES else "none")
    for name in ("sp", "np"):
        value = getattr(policy, name)
        if value in _POLICIES:
            _add(published, name, value)
    for name in ("adkim", "aspf"):
        value = getattr(policy, name)
        if value in ("r", "s"):
            _add(published, name, value)
    if policy.discovery_method in ("psl", "treewalk"):
        _add(published, "discovery_method", policy.discovery_method)
    _add(published, "fo", policy.fo, optional=True)
    if policy.testing in ("y", "n"):
        _add(published, "testing", policy.testing)
    for row in report.rows:
        record = ET.SubElement(root, "record")
        xrow = ET.SubElement(record, "row")
        _add(xrow, "source_ip", row.source_ip)
        _add(xrow, "count", row.count)
        evaluated = ET.SubElement(xrow, "policy_evaluated")
        _add(evaluated, "disposition", row.disposition)
        _add(evaluated, "dkim", row.dkim)
        _add(evaluated, "spf", row.spf)
        for kind, comment in row.reasons:
            reason = ET.SubElement(evaluated, "reason")
            _add(reason, "type", kind)
            _add(reason, "comment", comment, optional=True)
        identifiers = ET.SubElement(record, "identifiers")
        _add(identifiers, "header_from", row.header_from)
        _add(identifiers, "envelope_from", row.envelope_from, optional=True)
        _add(identifiers, "envelope_to", row.envelope_to, optional=True)
        auth = ET.SubElement(record, "auth_results")
        for dkim in row.dkim_results[:MAX_DKIM_RESULTS]:
            xdkim = ET.SubElement(auth, "dkim")
            _add(xdkim, "domain", dkim.domain)
            _add(xdkim, "selector", dkim.selector or "none")
            _add(xdkim, "result", dkim.result)
            _add(xdkim, "human_result", dkim.human_result, optional=True)
        for spf in row.spf_results[:1]:  # RFC 9990: at most one SPF result
            xspf = ET.SubElement(auth, "spf")
            _add(xspf, "domain", spf.domain)
            if spf.scope == "mfrom":
                _add(xspf, "scope", "mfrom")
            _add(xspf, "result", spf.result)
            _add(xspf, "human_result", spf.human_result, optional=True)
    ET.indent(root, space=" ")
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def gzipped(data: bytes) -> bytes:
    """gzip with no time stamp, so the same report always gives the same bytes."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def split_report(report: AggregateReport, max_size: int) -> list[AggregateReport]:
    """The report in as few parts as keep each gzip file within `max_size` bytes (RFC 9990
    §2.5: a report too large is sent as several, each with its own Report-ID)."""
    parts: list[Sequence[ReportRow]] = [report.rows]
    while True:
        sizes = [len(gzipped(to_xml(_with_rows(report, rows)))) for rows in parts]
        if all(size <= max_size for size in sizes) or all(len(rows) <= 1 for rows in parts):
            break
        split: list[Sequence[ReportRow]] = []
        for rows, size in zip(parts, sizes, strict=True):
            if size > max_size and len(rows) > 1:
                half = len(rows) // 2
                split += [rows[:half], rows[half:]]
            else:
                split.append(rows)
        parts = split
    return [_with_rows(report, rows) for rows in parts]


def _with_rows(report: AggregateReport, rows: Sequence[ReportRow]) -> AggregateReport:
    return AggregateReport(
        report.org_name,
        report.email,
        report.report_id,
        report.begin,
        report.end,
        report.policy,
        tuple(rows),
        report.version,
        report.extra_contact_info,
        report.generator,
        report.errors,
        report.namespace,
    )
