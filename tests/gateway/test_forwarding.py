"""Forwarding through the gateway, end to end over real sockets.

    zoe@a.example (127.0.0.3) ─► F: mailwarden for b.example, fwd@b.example forwards to
    carol@c.example ─► Postfix (the outbound relay) ─► R: mailwarden for c.example

F rewrites the envelope sender with SRS and ARC-seals what it verified; R checks SPF against
the SRS domain (pass: the relay's address is in srs.b.example's SPF, not in a.example's),
DKIM (zoe's signature is intact), DMARC and ARC. When R refuses a recipient, Postfix bounces
to the SRS address; F reverses it and the bounce reaches zoe's mailbox (A). The DNS of every
domain is one static zone.
"""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.dkim.helpers import dkimpy_dns, rsa_key
from tests.gateway.helpers import make_config, messages, running
from tests.gateway.postfix import Postfix, free_port, start_postfix

import dkim as dkimpy
from mailwarden.authres import parse_authentication_results
from mailwarden.dkim import KeyType, key_record, sign
from mailwarden.dns import StaticResolver
from mailwarden.gateway import ARCSealer, DownstreamRelay, Forwarding, MaildirRelay, PipelineChecks
from mailwarden.pipeline import build
from mailwarden.settings import DNSListSettings, GatewaySettings, GreylistSettings, Settings
from mailwarden.signing import ManagedKey, MemoryStore, Signer, Stage
from mailwarden.spf import SPFChecker
from mailwarden.srs import SRS, Aliases, Forwarder

ZOE_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
ARC_KEY = rsa_key(2048)
SECRET = b"forwarding secret"
ALIASES = """\
fwd@b.example: carol@c.example
fwd2@b.example: nobody@c.example
both@b.example: keep@b.example, carol@c.example
"""
RECORDS = {
    "a.example": {"TXT": "v=spf1 ip4:127.0.0.3 -all"},
    "z1._domainkey.a.example": {"TXT": key_record(ZOE_KEY)},
    "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject"},
    "spfonly.example": {"TXT": "v=spf1 ip4:127.0.0.3 -all"},
    "_dmarc.spfonly.example": {"TXT": "v=DMARC1; p=reject"},
    "srs.b.example": {"TXT": "v=spf1 ip4:127.0.0.1 -all"},
    "arc1._domainkey.b.example": {"TXT": key_record(ARC_KEY)},
}


def zone() -> StaticResolver:
    return StaticResolver(RECORDS)  # type: ignore[arg-type]


def pipeline_checks(hostname: str) -> PipelineChecks:
    settings = Settings(
        gateway=GatewaySettings(hostname=hostname),
        dnsbl=DNSListSettings(use=()),
        greylist=GreylistSettings(enabled=False),
    )
    return PipelineChecks(build(settings, zone()))


def arc_signer() -> Signer:
    store = MemoryStore()
    store.save(
        [ManagedKey("b.example", "arc1", KeyType.RSA, 2048, key_record(ARC_KEY), 0.0, Stage.ACTIVE)]
    )
    store.write_private_key("b.example", "arc1", ARC_KEY)
    return Signer(store)


class Ports:
    def __init__(self) -> None:
        self.forwarder, self.receiver, self.alice = free_port(), free_port(), free_port()


@pytest.fixture(scope="module")
def relay() -> Iterator[tuple[Postfix, Ports]]:
    """The outbound relay: Postfix routing each domain to its mailwarden on loopback."""
    ports = Ports()
    root = Path(tempfile.mkdtemp(prefix="mailwarden-forward-postfix-"))
    routes = (
        f"c.example=smtp:[127.0.0.1]:{ports.receiver} "
        f"a.example=smtp:[127.0.0.1]:{ports.alice} "
        f"spfonly.example=smtp:[127.0.0.1]:{ports.alice} "
        f"srs.b.example=smtp:[127.0.0.1]:{ports.forwarder}"
    )
    postfix = start_postfix(
        root,
        f"transport_maps = inline:{{ {routes} }}\n"
        "smtp_host_lookup = native\nbounce_queue_lifetime = 0\nmaximal_queue_lifetime = 0\n",
    )
    try:
        yield postfix, ports
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)


def signed_message(author: str, subject: str) -> bytes:
    message = (
        f"From: Zoe <{author}>\r\nTo: <fwd@b.example>\r\nSubject: {subject}\r\n"
        "Date: Wed, 01 May 2024 10:00:00 +0000\r\nMessage-ID: <1@a.example>\r\n\r\n"
        "Hello, forwarded.\r\n"
    ).encode()
    if author.endswith("@a.example"):
        return sign(message, "a.example", "z1", ZOE_KEY) + message
    return message


def submit(port: int, sender: str, rcpts: list[str], message: bytes) -> None:
    """Zoe's server at 127.0.0.3 sends to the forwarder."""
    with smtplib.SMTP(
        "127.0.0.1",
        port,
        local_hostname="mail.a.example",
        timeout=30,
        source_address=("127.0.0.3", 0),
    ) as client:
        client.sendmail(sender, rcpts, message)


async def wait_for(maildir: Path, count: int, seconds: float = 40) -> list[bytes]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = messages(maildir)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    return messages(maildir)


def results(message: bytes, authserv_id: str) -> dict[str, str]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    for field in head.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n"):
        name, _, value = field.partition(":")
        if name.lower() == "authentication-results" and value.strip().startswith(authserv_id):
            parsed = parse_authentication_results(value)
            found: dict[str, str] = {}
            for r in parsed.results:  # the first of each: spf for MAIL FROM before HELO
                found.setdefault(r.method, r.result)
            return found
    raise AssertionError(f"no Authentication-Results of {authserv_id}")


async def test_forward_passes_spf_and_its_bounce_reaches_the_sender(
    relay: tuple[Postfix, Ports], tmp_path: Path
) -> None:
    postfix, ports = relay
    srs = SRS("srs.b.example", (SECRET,))
    forwarding = Forwarding(
        Forwarder(srs, Aliases.parse(ALIASES), ["b.example"]),
        remote=DownstreamRelay("127.0.0.1", postfix.port, helo_name="mx.b.example"),
        sealer=ARCSealer(arc_signer(), "b.example", "mx.b.example"),
    )
    f_dir, r_dir, a_dir = tmp_path / "b", tmp_path / "c", tmp_path / "a"
    f_config = make_config(
        tmp_path / "f",
        listen=("127.0.0.1", ports.forwarder),
        hostname="mx.b.example",
        local_domains=("b.example", "srs.b.example"),
    )
    r_config = make_config(
        tmp_path / "r",
        listen=("127.0.0.1", ports.receiver),
        hostname="mx.c.example",
        local_domains=("c.example",),
        recipient_map=str(tmp_path / "c.map"),
    )
    (tmp_path / "c.map").write_text("carol@c.example\n")
    a_config = make_config(
        tmp_path / "al",
        listen=("127.0.0.1", ports.alice),
        hostname="mx.a.example",
        local_domains=("a.example", "spfonly.example"),
    )
    async with (
        running(
            f_config,
            forwarding.checks(pipeline_checks("mx.b.example")),
            relay=forwarding.downstream(MaildirRelay(f_dir, fsync=False)),
        ) as forwarder,
        running(r_config, pipeline_checks("mx.c.example"), maildir=r_dir),
        running(a_config, None, maildir=a_dir),
    ):
        # 1. forwarded: SRS sender, SPF pass at the receiver, DKIM intact, ARC sealed
        message = signed_message("zoe@a.example", "forwarded")
        await asyncio.to_thread(
            submit, ports.forwarder, "zoe@a.example", ["fwd@b.example"], message
        )
        (delivered,) = await wait_for(r_dir, 1)
        return_path = delivered.split(b"\r\n", 1)[0].decode()
        assert return_path.startswith("Return-Path: <SRS0=")
        assert return_path.endswith("@srs.b.example>")
        assert srs.reverse(return_path[14:-1]) == "zoe@a.example"
        assert b"Delivered-To: carol@c.example" in delivered
        found = results(delivered, "mx.c.example")
        assert found["spf"] == "pass"
        assert found["dkim"] == "pass"  # zoe's signature survived forwarding
        assert found["dmarc"] == "pass"
        assert found["arc"] == "pass"  # our seal
        forwarded_at_f = results(delivered, "mx.b.example")
        assert forwarded_at_f["spf"] == "pass"  # F saw zoe's own server
        body = delivered.split(b"\r\n", 2)[2]  # without the sink's Return-Path, Delivered-To
        records = {name: by_type["TXT"] for name, by_type in RECORDS.items()}
        cv, _, reason = dkimpy.arc_verify(body, dnsfunc=dkimpy_dns(records))
        assert cv == b"pass", reason
        # without SRS, the same relay would have failed zoe's SPF at the receiver
        plain = await SPFChecker(zone()).check_host("127.0.0.1", "a.example", "zoe@a.example")
        assert plain.result.value == "fail"

        # 2. the receiver refuses nobody@c.example: Postfix bounces to the SRS address,
        # F reverses it, and the bounce reaches zoe
        before = len(messages(a_dir))
        bounce_for = signed_message("zoe@a.example", "to nobody")
        await asyncio.to_thread(
            submit, ports.forwarder, "zoe@a.example", ["fwd2@b.example"], bounce_for
        )
        found_a = await wait_for(a_dir, before + 1)
        assert len(found_a) == before + 1
        bounce = found_a[-1]
        assert bounce.startswith(b"Return-Path: <>\r\nDelivered-To: zoe@a.example\r\n")
        assert b"nobody@c.example" in bounce
        log = [r for r in forwarder.log.records if r.get("type") == "transaction"]
        assert any(r["rcpts"] and r["rcpts"][0].startswith("SRS0=") for r in log)

    assert messages(f_dir) == []  # nothing was for b.example's own mailboxes


async def test_local_copy_forged_bounces_and_dmarc_warning(
    relay: tuple[Postfix, Ports], tmp_path: Path
) -> None:
    postfix, ports = relay
    srs = SRS("srs.b.example", (SECRET,))
    forwarding = Forwarding(
        Forwarder(srs, Aliases.parse(ALIASES), ["b.example"]),
        remote=DownstreamRelay("127.0.0.1", postfix.port, helo_name="mx.b.example"),
        sealer=ARCSealer(arc_signer(), "b.example", "mx.b.example"),
    )
    f_dir = tmp_path / "b"
    f_config = make_config(
        tmp_path / "f",
        listen=("127.0.0.1", ports.forwarder),
        hostname="mx.b.example",
        local_domains=("b.example", "srs.b.example"),
    )
    r_config = make_config(
        tmp_path / "r",
        listen=("127.0.0.1", ports.receiver),
        hostname="mx.c.example",
        local_domains=("c.example",),
    )
    async with (
        running(
            f_config,
            forwarding.checks(pipeline_checks("mx.b.example")),
            relay=forwarding.downstream(MaildirRelay(f_dir, fsync=False)),
        ) as forwarder,
        running(r_config, pipeline_checks("mx.c.example"), maildir=tmp_path / "c"),
    ):
        # a forwarding address keeping a copy: the copy here keeps the sender
        message = signed_message("zoe@a.example", "copy")
        await asyncio.to_thread(
            submit, ports.forwarder, "zoe@a.example", ["both@b.example"], message
        )
        (copy,) = await wait_for(f_dir, 1)
        assert copy.startswith(b"Return-Path: <zoe@a.example>\r\nDelivered-To: keep@b.example")
        assert b"ARC-Seal" not in copy  # only what leaves is sealed
        (out,) = await wait_for(tmp_path / "c", 1)
        assert out.startswith(b"Return-Path: <SRS0=")
        # forged and expired SRS addresses are refused at RCPT (no backscatter)
        expired = SRS("srs.b.example", (SECRET,), clock=lambda: time.time() - 30 * 86400)
        for address in (
            "SRS0=AAAA=AA=a.example=zoe@srs.b.example",
            expired.forward("zoe@a.example"),
        ):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
                await asyncio.to_thread(
                    submit, ports.forwarder, "", [address], b"Subject: x\r\n\r\nx\r\n"
                )
            code, text = caught.value.recipients[address]
            assert code == 550
            assert text.startswith(b"5.1.1")
        # an SPF-only sender with p=reject: forwarded, and the log says DMARC will fail
        plain = signed_message("max@spfonly.example", "spf only")
        await asyncio.to_thread(
            submit, ports.forwarder, "max@spfonly.example", ["fwd@b.example"], plain
        )
        records = [r for r in forwarder.log.records if r.get("forwarded")]
        warned = [r for r in records if "forwarding_warning" in r]
        assert len(warned) == 1
        assert "spfonly.example publishes p=reject" in warned[0]["forwarding_warning"]
        assert warned[0]["forwarded"] == {"fwd@b.example": ["carol@c.example"]}
