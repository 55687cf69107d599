"""Reports through a real Postfix: the relay takes the DKIM-signed report, Postfix delivers
it into a Maildir, and what arrives is a valid RFC 9990 report that reads back; a recipient
Postfix refuses fails for good and suppresses its destination."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.postfix import Postfix, start_postfix
from tests.reports.conftest import validate
from tests.reports.helpers import evaluation
from tests.reports.test_sender import KEY, NOW, config

from mailwarden.dkim import DKIMVerifier
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import StaticResolver
from mailwarden.message import Message
from mailwarden.reports import AggregateReport, DeliveryStatus, SQLiteStore
from mailwarden.reports.incoming import read_reports
from mailwarden.reports.sender import ReportSender
from mailwarden.reports.transport import SMTPTransport


@pytest.fixture(scope="module")
def postfix() -> Iterator[Postfix]:
    root = Path(tempfile.mkdtemp(prefix="mailwarden-postfix-reports-"))
    try:
        server = start_postfix(root)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def zone() -> StaticResolver:
    return StaticResolver(
        {
            "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject; rua=mailto:postmaster@example.net"},
            "_dmarc.b.example": {"TXT": "v=DMARC1; p=none; rua=mailto:nobody@example.net"},
            "a.example._report._dmarc.example.net": {"TXT": "v=DMARC1"},
            "b.example._report._dmarc.example.net": {"TXT": "v=DMARC1"},
            "sel._domainkey.reports.example.net": {"TXT": key_record(KEY)},
        }
    )


async def test_a_report_through_postfix(postfix: Postfix, tmp_path: Path, schema: Any) -> None:
    store = SQLiteStore(tmp_path / "reports.sqlite3")
    a_record = "v=DMARC1; p=reject; rua=mailto:postmaster@example.net"
    b_record = "v=DMARC1; p=none; rua=mailto:nobody@example.net"
    await store.add_evaluations(
        [evaluation(record=a_record)] * 4
        + [evaluation(policy_domain="b.example", header_from="b.example", record=b_record)]
    )
    transport = SMTPTransport("127.0.0.1", postfix.port, helo="mx.example.net", timeout=30)
    settings = config(tmp_path)
    sender = ReportSender(store, settings, zone(), transport=transport, clock=lambda: NOW)
    built = await sender.build_due(NOW)
    assert {b.domain for b in built} == {"a.example", "b.example"}
    outcomes = {o.destination: o for o in await sender.send_due(NOW, everything=True)}
    assert outcomes["postmaster@example.net"].status is DeliveryStatus.SENT
    refused = outcomes["nobody@example.net"]
    assert refused.status is DeliveryStatus.FAILED
    assert refused.detail.startswith("550")
    state = await store.destination("nobody@example.net")
    assert state is not None
    assert state.suppressed_until > NOW
    (delivered,) = postfix.wait_delivered("postmaster")
    message = Message.from_bytes(delivered.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    verdicts = await DKIMVerifier(zone(), clock=lambda: NOW).verify(message)
    assert [(v.result.value, v.domain) for v in verdicts] == [("pass", "reports.example.net")]
    return_path = message.get("return-path")
    assert return_path is not None
    assert "dmarc-reports+" in return_path.text()
    (found,) = read_reports(delivered)
    report = found.report
    assert isinstance(report, AggregateReport)
    assert (report.domain, report.messages) == ("a.example", 4)
    (a_report,) = [b for b in built if b.domain == "a.example"]
    validate(schema, gzip.decompress(a_report.payload))
    assert report.report_id == a_report.report_id
    await store.close()
