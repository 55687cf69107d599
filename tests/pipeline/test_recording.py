"""Every final DMARC evaluation is recorded where the front ends get the pipeline's
decision: through the gateway over a real socket, with no code of the gateway's own; a
deferred message is not (it will come again), nor what trusted clients relay."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.gateway.helpers import Client, make_config, running

from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dmarc import DMARCPolicy, DMARCStatus, OverrideReason
from mailwarden.dns import StaticResolver
from mailwarden.gateway import PipelineChecks
from mailwarden.message import Message
from mailwarden.pipeline import build
from mailwarden.pipeline.recording import _disposition
from mailwarden.policy import Action
from mailwarden.reports import Disposition, MessageKind, SQLiteStore, message_kind
from mailwarden.settings import DNSListSettings, GatewaySettings, Settings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(11, 43)))


def zone() -> StaticResolver:
    return StaticResolver(
        {
            "a.example": {"TXT": "v=spf1 ip4:127.0.0.0/8 -all"},
            "sel._domainkey.a.example": {"TXT": key_record(KEY)},
            "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject; rua=mailto:d@a.example"},
            "bank.example": {"TXT": "v=spf1 ip4:198.51.100.0/24 -all"},
            "_dmarc.bank.example": {"TXT": "v=DMARC1; p=quarantine; rua=mailto:d@bank.example"},
            "plain.example": {"TXT": "v=spf1 ip4:127.0.0.0/8 -all"},
            "odd.example": {"TXT": "v=spf1 ip4:127.0.0.0/8 -all"},
            "_dmarc.odd.example": {"TXT": "v=DMARC1; p=bogus"},
        }
    )


def legitimate() -> bytes:
    body = b"From: alice@a.example\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
    return sign(body, "a.example", "sel", KEY) + body


SPOOF = b"From: ceo@bank.example\r\nTo: bob@example.net\r\nSubject: pay\r\n\r\nnow\r\n"


async def _deliver(address: tuple[str, int], mail_from: str, message: bytes) -> int:
    client = await Client.connect(address)
    assert (await client.cmd("EHLO mail.a.example"))[0] == 250
    assert (await client.cmd(f"MAIL FROM:<{mail_from}>"))[0] == 250
    assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await client.cmd("DATA"))[0] == 354
    await client.send(message + b".\r\n")
    code, _ = await client.reply()
    await client.cmd("QUIT")
    return code


async def test_the_gateway_records_every_final_evaluation(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "reports.sqlite3")
    config = make_config(tmp_path)
    settings = Settings(gateway=replace(config), dnsbl=DNSListSettings(use=()))
    pipeline = build(settings, zone(), greylist=False, reports=store)
    assert pipeline.recorder is not None
    async with running(config, PipelineChecks(pipeline)) as gateway:
        assert await _deliver(gateway.address, "alice@a.example", legitimate()) == 250
        assert await _deliver(gateway.address, "x@a.example", SPOOF) == 250  # quarantined
        assert await _deliver(gateway.address, "", legitimate()) == 250  # a bounce
    await pipeline.drain()  # the recorder writes what is queued and closes the store
    reader = SQLiteStore(tmp_path / "reports.sqlite3")
    try:
        kept = await reader.evaluations(0, 2**40)
    finally:
        await reader.close()
    assert len(kept) == 3
    good, spoof, bounce = kept
    assert (good.header_from, good.result, good.disposition) == (
        "a.example",
        "pass",
        Disposition.PASS,
    )
    assert (good.source_ip, good.envelope_from, good.envelope_to) == (
        "127.0.0.1",
        "a.example",
        "example.net",
    )
    assert good.dkim_aligned
    assert good.spf_aligned
    assert good.policy_domain == "a.example"
    assert good.dkim[0].domain == "a.example"
    assert good.dkim[0].selector == "sel"
    assert good.record.startswith("v=DMARC1; p=reject")
    assert good.discovery == "treewalk"
    assert (spoof.header_from, spoof.result, spoof.policy) == ("bank.example", "fail", "quarantine")
    # p=quarantine and the policy marked it as spam: quarantine, as the domain asked
    assert (spoof.disposition, spoof.override, spoof.action) == (
        Disposition.QUARANTINE,
        "",
        "add_header",
    )
    assert bounce.kind is MessageKind.BOUNCE
    assert bounce.spf_scope == "helo"


async def test_deferred_and_trusted_mail_is_not_recorded(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "reports.sqlite3")
    config = make_config(
        tmp_path, trusted_networks=(__import__("ipaddress").ip_network("127.0.0.0/8"),)
    )
    settings = Settings(gateway=config, dnsbl=DNSListSettings(use=()))
    pipeline = build(settings, zone(), reports=store)
    async with running(config, PipelineChecks(pipeline)) as gateway:
        assert await _deliver(gateway.address, "alice@a.example", legitimate()) == 250
    await pipeline.drain()
    reader = SQLiteStore(tmp_path / "reports.sqlite3")
    try:
        assert await reader.evaluations(0, 2**40) == []
    finally:
        await reader.close()


async def test_only_domains_with_a_dmarc_record_are_recorded(tmp_path: Path) -> None:
    """No report is ever due for a domain without a DMARC record, so its mail is not
    written; a record found but odd is (p=bogus: read as p=none, RFC 9989)."""
    store = SQLiteStore(tmp_path / "reports.sqlite3")
    config = make_config(tmp_path)
    settings = Settings(gateway=config, dnsbl=DNSListSettings(use=()))
    pipeline = build(settings, zone(), greylist=False, reports=store)
    plain = b"From: a@plain.example\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
    odd = plain.replace(b"plain.example", b"odd.example")
    async with running(config, PipelineChecks(pipeline)) as gateway:
        assert await _deliver(gateway.address, "a@plain.example", plain) == 250
        assert await _deliver(gateway.address, "a@odd.example", odd) == 250
        assert await _deliver(gateway.address, "alice@a.example", legitimate()) == 250
    await pipeline.drain()
    reader = SQLiteStore(tmp_path / "reports.sqlite3")
    try:
        kept = await reader.evaluations(0, 2**40)
    finally:
        await reader.close()
    assert [(e.header_from, e.policy_domain, e.result) for e in kept] == [
        ("odd.example", "odd.example", "none"),
        ("a.example", "a.example", "pass"),
    ]


def test_reports_off_records_nothing(tmp_path: Path) -> None:
    settings = Settings(
        gateway=GatewaySettings(data_dir=str(tmp_path)),
        reports=replace(Settings().reports, record=False),
    )
    assert build(settings, zone(), reports=True).recorder is None
    assert build(Settings(gateway=GatewaySettings(data_dir=str(tmp_path))), zone()).recorder is None


class _Verdict:
    def __init__(self, dmarc: Any, action: Action) -> None:
        self.dmarc = dmarc
        self.policy = type("P", (), {"action": action})()


class _DMARC:
    def __init__(
        self,
        result: DMARCStatus,
        requested: DMARCPolicy | None,
        policy: DMARCPolicy | None,
        override: OverrideReason | None = None,
    ) -> None:
        self.result, self.requested_policy, self.policy = result, requested, policy
        self.override_reason = override


R, Q, N = DMARCPolicy.REJECT, DMARCPolicy.QUARANTINE, DMARCPolicy.NONE


@pytest.mark.parametrize(
    ("result", "requested", "applied", "override", "action", "expected"),
    [
        (DMARCStatus.PASS, R, R, None, Action.ACCEPT, (Disposition.PASS, "")),
        (DMARCStatus.PASS, N, N, None, Action.ACCEPT, (Disposition.NONE, "")),
        (DMARCStatus.PASS, Q, Q, None, Action.REJECT, (Disposition.PASS, "")),  # spam, not DMARC
        (DMARCStatus.FAIL, R, R, None, Action.REJECT, (Disposition.REJECT, "")),
        (DMARCStatus.FAIL, R, R, None, Action.ADD_HEADER, (Disposition.QUARANTINE, "local_policy")),
        (DMARCStatus.FAIL, Q, Q, None, Action.ADD_HEADER, (Disposition.QUARANTINE, "")),
        (
            DMARCStatus.FAIL,
            R,
            Q,
            OverrideReason.POLICY_TEST_MODE,
            Action.ADD_HEADER,
            (Disposition.QUARANTINE, "policy_test_mode"),
        ),
        (
            DMARCStatus.FAIL,
            R,
            R,
            OverrideReason.TRUSTED_FORWARDER,
            Action.ACCEPT,
            (Disposition.NONE, "trusted_forwarder"),
        ),
        (DMARCStatus.FAIL, N, N, None, Action.ACCEPT, (Disposition.NONE, "")),
        (DMARCStatus.NONE, None, None, None, Action.REJECT, (Disposition.NONE, "")),
    ],
)
def test_dispositions(
    result: DMARCStatus,
    requested: Any,
    applied: Any,
    override: Any,
    action: Action,
    expected: tuple[Disposition, str],
) -> None:
    verdict: Any = _Verdict(_DMARC(result, requested, applied, override), action)
    assert _disposition(verdict) == expected


@pytest.mark.parametrize(
    ("mail_from", "headers", "kind"),
    [
        ("a@x.example", b"Subject: hi\r\n", MessageKind.MESSAGE),
        ("", b"Subject: hi\r\n", MessageKind.BOUNCE),
        ("<>", b"Subject: hi\r\n", MessageKind.BOUNCE),
        (
            "a@x.example",
            b"Content-Type: multipart/report; report-type=delivery-status\r\n",
            MessageKind.BOUNCE,
        ),
        (
            "a@x.example",
            b'Content-Type: multipart/report;\r\n report-type="feedback-report"\r\n',
            MessageKind.REPORT,
        ),
        (
            "a@x.example",
            b"Subject: Report Domain: a.example Submitter: g.com Report-ID: 1\r\n",
            MessageKind.REPORT,
        ),
        ("a@x.example", b"Subject: report domain:   a.example\r\n", MessageKind.REPORT),
        (
            "a@x.example",
            b"Content-Type: application/zip;\r\n"
            b' name="g.com!a.example!1633996800!1634083199.zip"\r\n',
            MessageKind.REPORT,
        ),
        ("a@x.example", b"Subject: a report on domains\r\n", MessageKind.MESSAGE),
    ],
)
def test_reports_and_bounces_are_recognised(
    mail_from: str, headers: bytes, kind: MessageKind
) -> None:
    message = Message.from_bytes(headers + b"\r\nbody\r\n")
    assert message_kind(mail_from, message) is kind


def test_an_attachment_named_like_a_report_is_a_report() -> None:
    body = (
        b"--b\r\nContent-Type: application/gzip\r\nContent-Disposition: attachment;\r\n"
        b' filename="mail.ru!a.example!1559779200!1559865600.xml.gz"\r\n\r\nxx\r\n--b--\r\n'
    )
    message = Message.from_bytes(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body)
    assert message_kind("r@mail.ru", message) is MessageKind.REPORT


async def test_recording_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """`record` only queues: no write happens during the calls (they never await, so the
    loop cannot run the writer meanwhile); the store is written afterwards, in batches."""
    import threading

    from tests.reports.helpers import evaluation

    from mailwarden.reports import Recorder, ReportSettings

    store = SQLiteStore(tmp_path / "r.sqlite3")
    threads: list[int] = []
    add = store.add_evaluations

    async def watched(batch: list[Any]) -> None:
        threads.append(threading.get_ident())
        await add(batch)

    store.add_evaluations = watched  # type: ignore[method-assign]
    recorder = Recorder(store, ReportSettings(), interval=0.05)
    for i in range(10_000):
        recorder.record(evaluation(time=1e9 + i))
    assert threads == []  # nothing written while recording
    assert recorder.pending == 10_000
    await recorder.close()
    assert recorder.written == 10_000
    assert recorder.dropped == 0
    assert len(threads) >= 2  # in batches
