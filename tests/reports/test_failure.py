"""Failure reports (RFC 9991): off by default; only for domains that ask, never for a PSD;
redacted (RFC 6590) unless allowlisted; repeats counted (Incidents); one a day per
destination; and what we send reads back as an ARF auth-failure report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.reports.helpers import DAY, T0, evaluation, spoof
from tests.reports.test_sender import NOW, FakeRelay, config, zone

from mailwarden.reports import (
    DKIMAuth,
    FailureReport,
    FailureSettings,
    MessageKind,
    Recorder,
    Redaction,
    SQLiteStore,
)
from mailwarden.reports.failure import (
    failure_options,
    failure_wanted,
    identity_alignment,
    make_incident,
    redact_headers,
)
from mailwarden.reports.incoming import read_reports
from mailwarden.reports.sender import ReportSender

ON = FailureSettings(enabled=True)
RUF = "v=DMARC1; p=reject; ruf=mailto:ruf@a.example; fo={fo}"
HEADERS = (
    b"From: Alice Example <alice@a.example>\r\nTo: bob@example.net, carol@example.net\r\n"
    b"Subject: hello\r\nMessage-ID: <m1@a.example>\r\n"
    b"Received: from x by mx.example.net for <bob@example.net>\r\n"
)


@pytest.mark.parametrize(
    ("fo", "changes", "met"),
    [
        ("0", {}, ["0"]),  # DMARC failed: nothing aligned passed
        ("0", {"result": "pass", "dkim_aligned": True}, []),
        ("1", {"result": "pass", "dkim_aligned": True, "spf_aligned": False}, ["1"]),
        ("1", {"result": "pass", "dkim_aligned": True, "spf_aligned": True}, []),
        ("d", {"dkim": (DKIMAuth("x.example", "s", "fail"),)}, ["d"]),
        ("d", {"dkim": (DKIMAuth("x.example", "s", "pass"),)}, []),
        ("s", {"spf_result": "fail"}, ["s"]),
        ("s", {"spf_result": "softfail"}, []),
        ("0:1:d:s", {"spf_result": "fail"}, ["0", "1", "s"]),
    ],
)
def test_fo_options(fo: str, changes: dict[str, Any], met: list[str]) -> None:
    e = spoof(record=RUF.format(fo=fo), **changes)
    assert failure_options(e) == met
    assert failure_wanted(e, ON) == bool(met)


def test_when_failure_reports_are_not_wanted() -> None:
    e = spoof(record=RUF.format(fo="1"))
    assert not failure_wanted(e, FailureSettings())  # off by default
    assert not failure_wanted(replace(e, record="v=DMARC1; p=reject; fo=1"), ON)  # no ruf
    assert not failure_wanted(replace(e, record=RUF.format(fo="1") + "; psd=y"), ON)  # a PSD
    assert not failure_wanted(replace(e, kind=MessageKind.REPORT), ON)  # no loops
    assert not failure_wanted(replace(e, kind=MessageKind.BOUNCE), ON)
    assert not failure_wanted(replace(e, result="temperror"), ON)
    https = "v=DMARC1; p=reject; ruf=https://a.example/r; fo=1"
    assert not failure_wanted(replace(e, record=https), ON)


def test_identity_alignment() -> None:
    assert identity_alignment(spoof()) == "none"
    assert identity_alignment(evaluation(spf_aligned=False)) == "dkim"
    assert identity_alignment(evaluation()) == "dkim, spf"


@pytest.mark.parametrize("redaction", list(Redaction))
def test_local_parts_are_redacted(redaction: Redaction) -> None:
    redacted = redact_headers(HEADERS, redaction, b"secret")
    for local in (b"alice@", b"bob@", b"carol@"):
        assert local not in redacted
    assert b"<m1@a.example>" in redacted  # the Message-ID identifies the message: kept
    assert b"@a.example>" in redacted
    assert b"@example.net" in redacted
    if redaction is Redaction.HASH:
        again = redact_headers(HEADERS, redaction, b"secret")
        assert again == redacted  # repeats stay recognisable
        assert redact_headers(HEADERS, redaction, b"other") != redacted  # keyed
    else:
        assert b"redacted@a.example" in redacted


def test_the_allowlist_gets_fuller_reports() -> None:
    e = spoof(record=RUF.format(fo="0"))
    plain = make_incident(e, HEADERS, b"body text", ON, secret=b"k", mail_from="bob@b.example")
    assert plain is not None
    assert b"alice@" not in plain.headers
    assert plain.body == b""
    assert "bob@" not in plain.evaluation
    full_settings = replace(ON, full_report_domains=("a.example",), include_body=True)
    full = make_incident(e, HEADERS, b"body text", full_settings, secret=b"k")
    assert full is not None
    assert b"alice@a.example" in full.headers
    assert full.body == b"body text"
    assert plain.key == full.key  # alike failures share a key


async def test_repeats_are_one_report_a_day_with_incidents(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.sqlite3")
    settings = config(tmp_path, failure=ON)
    recorder = Recorder(store, settings, secret=b"k")
    e = spoof(record=RUF.format(fo="0"))
    for minute in range(5):
        recorder.record(replace(e, time=T0 + minute * 60), HEADERS, b"", mail_from="x@b.example")
    recorder.record(replace(e, source_ip="198.51.100.7"), HEADERS)  # another source
    await recorder.flush()
    relay = FakeRelay()
    sender = ReportSender(store, settings, zone(), transport=relay, clock=lambda: NOW)
    outcomes = await sender.send_failures(NOW)
    assert len(outcomes) == 1  # one a day to ruf@a.example
    ((_, rcpt, message),) = relay.sent
    assert rcpt == "ruf@a.example"
    (found,) = read_reports(message)
    report = found.report
    assert isinstance(report, FailureReport)
    assert (report.domain, report.auth_failure, report.identity_alignment) == (
        "a.example",
        "dmarc",
        "none",
    )
    assert report.incidents == 5
    assert report.source_ip == "203.0.113.66"
    assert b"alice@" not in message
    assert b"x@b.example" not in message
    assert await sender.send_failures(NOW + 3600) == []  # the limit: the other waits
    later = await sender.send_failures(NOW + DAY + 1)
    assert len(later) == 1
    assert len(relay.sent) == 2
    assert b"Incidents: 1" in relay.sent[1][2]
    recorder.record(replace(e, time=NOW + DAY), HEADERS)  # the first source again
    await recorder.close()
    store2 = SQLiteStore(tmp_path / "r.sqlite3")
    sender2 = ReportSender(store2, settings, zone(), transport=relay, clock=lambda: NOW)
    await sender2.send_failures(NOW + 3 * DAY)
    assert b"Incidents: 1" in relay.sent[2][2]  # only what came after the last report
    await store2.close()


async def test_nothing_is_sent_when_off(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.sqlite3")
    recorder = Recorder(store, config(tmp_path), secret=b"k")  # failure reports off
    e = spoof(record=RUF.format(fo="0"))
    assert not recorder.wants_headers(e)
    recorder.record(e, HEADERS)
    await recorder.flush()
    assert await store.incidents() == []
    relay = FakeRelay()
    sender = ReportSender(store, config(tmp_path), zone(), transport=relay, clock=lambda: NOW)
    assert await sender.send_failures(NOW) == []
    await store.close()
