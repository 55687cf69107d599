"""Reports in: every public sample imports (and the empty one is refused), in every
container; hostile input is refused with a reason and costs nothing else."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.testdata import require_testdata

from mailwarden.reports import AggregateReport, FailureReport, ReportKind
from mailwarden.reports.aggregate import NAMESPACE
from mailwarden.reports.incoming import Limits, is_bounce, read_reports


def samples() -> list[Path]:
    base = require_testdata("dmarc-report-samples")
    return sorted(
        p
        for p in base.rglob("*")
        if p.is_file() and p.suffix not in (".md", ".MIT") and p.name != "LICENSE"
    )


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


SAMPLES = samples()


@pytest.mark.parametrize("path", SAMPLES, ids=_id)
def test_every_sample_imports(path: Path) -> None:
    found = read_reports(path.read_bytes(), path.name)
    if path.name == "empty.xml":
        assert [(f.refused, f.reason) for f in found] == [(True, "empty input")]
        return
    assert found, path
    for item in found:
        assert not item.refused, item.reason
        expected = ReportKind.FAILURE if path.parent.name == "failure" else ReportKind.AGGREGATE
        assert item.kind is expected
        assert item.report is not None
        assert item.report.domain
        assert item.report.messages >= 1


def _one(name: str) -> AggregateReport:
    base = require_testdata("dmarc-report-samples", "parsedmarc")
    (found,) = read_reports(next(base.rglob(name)).read_bytes(), name)
    assert isinstance(found.report, AggregateReport), found.reason
    return found.report


def test_the_rfc9990_sample() -> None:
    report = _one("rfc9990-sample.xml")
    assert report.namespace == NAMESPACE
    assert (report.org_name, report.email) == (
        "Sample Reporter",
        "report_sender@example-reporter.com",
    )
    assert report.report_id == "3v98abbp8ya9n3va8yr8oa3ya"
    assert report.generator == "Example DMARC Aggregate Reporter v1.2"
    policy = report.policy
    assert (policy.domain, policy.p, policy.sp, policy.np) == (
        "example.com",
        "quarantine",
        "none",
        "none",
    )
    assert (policy.testing, policy.discovery_method, policy.adkim, policy.pct) == (
        "n",
        "treewalk",
        "",
        "",
    )
    (row,) = report.rows
    assert (row.source_ip, row.count, row.disposition, row.dkim, row.spf) == (
        "192.0.2.123",
        123,
        "pass",
        "pass",
        "fail",
    )
    assert (row.dkim_results[0].domain, row.dkim_results[0].selector) == ("example.com", "abc123")
    assert row.spf_results[0].result == "fail"


def test_rfc7489_and_namespace_less_rfc9990() -> None:
    old = _one("example.net!example.com!1529366400!1529452799.xml")
    assert (old.policy.pct, old.policy.fo, old.policy.np, old.namespace) == ("100", "0", "", "")
    new = _one("rfc9990-example.net!example.com!1700000000!1700086399.xml")
    assert (new.version, new.policy.np, new.policy.testing) == ("2.0", "reject", "y")
    assert new.policy.discovery_method == "treewalk"


def test_damaged_reports_are_read_leniently() -> None:
    broken = _one("invalid_xml.xml")
    assert broken.rows[0].header_from == "bad<xml.net"
    assert broken.email == "<bad-xml@bad-xml.net>"
    ikea = _one("ikea.com!example.de!1538690400!1538776800.xml")
    assert ikea.end - ikea.begin == 86400
    assert "\ufffd" in _one("invalid_utf_8.xml").rows[0].header_from
    upper = _one("report_with_upper_cased_pass.xml").rows[0]
    assert (upper.dkim, upper.spf, upper.disposition) == ("pass", "pass", "none")
    assert upper.dkim_results[0].result == "pass"
    assert _one("empty_reason.xml").rows[0].reasons[0] == ("", "")


def test_plain_gzip_and_zip_give_the_same_report() -> None:
    base = require_testdata("dmarc-report-samples", "parsedmarc", "extract_report")
    reports = [
        read_reports((base / name).read_bytes())[0].report
        for name in ("nice-input.xml", "nice-input.xml.gz", "nice-input.xml.zip")
    ]
    assert reports[0] == reports[1] == reports[2]
    changed = read_reports((base / "changed-input.xml").read_bytes())[0].report
    assert changed != reports[0]


def test_a_message_report_names_its_reporter() -> None:
    report = _one(
        "Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml"
    )
    assert report.org_name == "google.com"


def test_the_failure_samples() -> None:
    base = require_testdata("dmarc-report-samples", "parsedmarc", "failure")
    (plain,) = read_reports((base / "exim_plain_text_only_no_arf_part.eml").read_bytes())
    assert isinstance(plain.report, FailureReport)
    assert (plain.report.feedback_type, plain.report.source_ip) == ("auth-failure", "203.0.113.68")
    (crlf,) = read_reports((base / "dmarc_ruf_report_linkedin.crlf.eml").read_bytes())
    (lf,) = read_reports((base / "dmarc_ruf_report_linkedin.eml").read_bytes())
    assert crlf.report == lf.report
    assert isinstance(lf.report, FailureReport)
    assert (lf.report.domain, lf.report.header_from, lf.report.auth_failure) == (
        "example.com",
        "example.com",
        "dmarc",
    )


# -- hostile input ----------------------------------------------------------------------
GOOD = (
    b'<?xml version="1.0"?><feedback><report_metadata><org_name>r</org_name>'
    b"<email>a@r.example</email><report_id>42</report_id><date_range><begin>1</begin>"
    b"<end>2</end></date_range></report_metadata><policy_published><domain>a.example</domain>"
    b"<p>none</p></policy_published><record><row><source_ip>192.0.2.1</source_ip>"
    b"<count>3</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim>"
    b"<spf>pass</spf></policy_evaluated></row><identifiers><header_from>a.example"
    b"</header_from></identifiers><auth_results/></record></feedback>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
        for i in range(1, 10)
    )
    + b"]><feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>"
)


def _zip(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def _message(*attachments: tuple[str, str, bytes]) -> bytes:
    import base64

    parts = [b"--B\r\nContent-Type: text/plain\r\n\r\nreports attached\r\n"]
    for ctype, name, data in attachments:
        parts.append(
            f"--B\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'.encode()
            + base64.encodebytes(data)
            + b"\r\n"
        )
    return (
        b"From: r@r.example\r\nTo: d@a.example\r\nSubject: Report Domain: a.example\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        + b"".join(parts)
        + b"--B--\r\n"
    )


LIMITS = Limits(input_size=2_000_000, expanded_size=1_000_000)
ZEROS = b"<feedback>" + b" " * 5_000_000 + b"</feedback>"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (BILLION_LAUGHS, "document type or entity declaration"),
        (EXTERNAL, "document type or entity declaration"),
        (gzip.compress(ZEROS), "expands beyond the limit"),
        (_zip(("r.xml", ZEROS)), "expands beyond the limit"),
        (gzip.compress(GOOD)[:-12], "truncated gzip"),
        (b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip"),
        (_zip(("r.xml", GOOD))[:60], "damaged zip"),
        (gzip.compress(gzip.compress(GOOD)), "archive inside an archive"),
        (_zip(("inner.zip", _zip(("r.xml", GOOD)))), "archive inside an archive"),
        (_zip(("r.xml.gz", gzip.compress(GOOD))), "archive inside an archive"),
        (b"x" * 3_000_000, "larger than"),
        (b"   \r\n", "empty input"),
        (b"<html><body>hello</body></html>", "no <feedback> element"),
        (GOOD.replace(b"<report_id>42</report_id>", b""), "no report_id"),
        (GOOD.replace(b"<count>3</count>", b"<count>-3</count>"), "count is not a whole number"),
        (GOOD.replace(b"<count>3</count>", b"<count>\xd9\xa3</count>"), "not a whole number"),
        (GOOD.replace(b"192.0.2.1", b"999.1.1.1"), "source_ip is not an address"),
        (_message(("text/plain", "notes.txt", b"hello")), "no report in this message"),
        (_message(("application/gzip", "r.xml.gz", b"plain text, not gzip")), "not a report"),
        (b"Subject: hi\r\n\r\nno report here\r\n", "no report in this message"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_hostile_input_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    found = read_reports(data, "input", LIMITS)
    assert found
    assert all(f.refused for f in found)
    assert reason in found[0].reason


def test_one_bad_attachment_loses_nothing_else() -> None:
    other = GOOD.replace(b"<report_id>42</report_id>", b"<report_id>43</report_id>")
    message = _message(
        ("application/gzip", "bomb.xml.gz", gzip.compress(ZEROS)),
        ("application/gzip", "good.xml.gz", gzip.compress(GOOD)),
        ("application/zip", "two.zip", _zip(("a.xml", other), ("nested.zip", _zip(("x", GOOD))))),
        ("application/xml", "bad.xml", BILLION_LAUGHS),
    )
    found = read_reports(message, "m.eml", LIMITS)
    assert [(f.where.split(":", 1)[1], f.refused) for f in found] == [
        ("bomb.xml.gz", True),
        ("good.xml.gz", False),
        ("two.zip:a.xml", False),
        ("two.zip:nested.zip", True),
        ("bad.xml", True),
    ]
    assert [f.report.report_id for f in found if f.report] == ["42", "43"]


def test_an_encrypted_zip_member_is_refused() -> None:
    data = bytearray(_zip(("r.xml", GOOD)))
    data[6] |= 0x1  # the local header's encryption flag
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 0x1
    (found,) = read_reports(bytes(data))
    assert found.refused
    assert "encrypted" in found.reason


def test_bounces_are_recognised() -> None:
    dsn = (
        b"From: MAILER-DAEMON@x\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b' boundary="b"\r\n\r\n--b\r\n\r\nfailed\r\n--b--\r\n'
    )
    assert is_bounce(dsn)
    assert read_reports(dsn) == []
    assert not is_bounce(GOOD)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    for found in read_reports(data, "fuzz", LIMITS):
        assert found.refused == (found.report is None)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.binary(min_size=1, max_size=8), st.booleans())
def test_mangled_reports_never_raise(position: int, junk: bytes, truncate: bool) -> None:
    data = GOOD[:position] if truncate else GOOD[:position] + junk + GOOD[position:]
    for container in (data, gzip.compress(data), _zip(("r.xml", data))):
        for found in read_reports(container, "fuzz", LIMITS):
            if found.report is not None:
                assert found.report.report_id
                assert found.report.domain


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_messages_never_raise(text: str) -> None:
    data = (
        "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: message/feedback-report\r\n\r\n" + text + "\r\n--b--\r\n"
    )
    for found in read_reports(data.encode("utf-8", "surrogatepass"), "fuzz", LIMITS):
        assert found.kind is ReportKind.FAILURE
