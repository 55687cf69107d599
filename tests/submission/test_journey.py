"""The whole journey on one machine (issue 16 §4): submission to a.example's MSA, Postfix as
a.example's MTA, b.example's gateway, Bob's mailbox, every check passing on real DNS.

    alice (smtplib-like client) ─AUTH/STARTTLS─► mailwarden submit (a.example's MSA: signs
    RSA-2048 + Ed25519) ─► Postfix (a.example's MTA, 127.0.0.1) ─► mailwarden serve
    (b.example's MX: iprev, SPF, DKIM, DMARC) ─► Bob's Maildir

The DNS of both domains is served by a real nsd on loopback, and both mailwarden servers ask
it through the production resolver. The test reads the message Bob got and its
Authentication-Results: iprev, SPF, both DKIM signatures and DMARC pass.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.dns.nsd import NSD, nsd_program, start_nsd
from tests.gateway.helpers import make_config, messages, running
from tests.gateway.postfix import Postfix, start_postfix
from tests.submission.helpers import (
    add_user,
    connect_starttls,
    dkim_records,
    login,
    make_settings,
    send,
)
from tests.submission.helpers import running as running_submission
from tests.testdata import unavailable

from mailwarden.authres import parse_authentication_results
from mailwarden.dkim.keygen import txt_strings
from mailwarden.dns.cache import CachingResolver
from mailwarden.dns.system import SystemResolver
from mailwarden.gateway import DownstreamRelay, PipelineChecks
from mailwarden.pipeline import build
from mailwarden.settings import DNSListSettings, GatewaySettings, GreylistSettings, Settings

SOA = "@ IN SOA ns.{0}. hostmaster.{0}. 1 3600 600 86400 300\n@ IN NS ns.{0}.\n"


def zones() -> dict[str, str]:
    a_example = "$ORIGIN a.example.\n$TTL 300\n" + SOA.format("a.example")
    a_example += '@ IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
    a_example += "ns IN A 127.0.0.1\nmail IN A 127.0.0.1\n"
    a_example += '_dmarc IN TXT "v=DMARC1; p=reject"\n'
    for name, record in dkim_records().items():
        strings = " ".join(f'"{s}"' for s in txt_strings(record))
        a_example += f"{name}. IN TXT ( {strings} )\n"
    b_example = "$ORIGIN b.example.\n$TTL 300\n" + SOA.format("b.example")
    b_example += "@ IN MX 10 mx\nmx IN A 127.0.0.1\nns IN A 127.0.0.1\n"
    reverse = "$ORIGIN 127.in-addr.arpa.\n$TTL 300\n" + SOA.format("127.in-addr.arpa")
    reverse += "1.0.0 IN PTR mail.a.example.\n"
    return {"a.example": a_example, "b.example": b_example, "127.in-addr.arpa": reverse}


@pytest.fixture(scope="module")
def nsd() -> Iterator[NSD]:
    if nsd_program() is None:
        unavailable("nsd is not installed (Debian package nsd; `make system-deps`)")
    folder = Path(tempfile.mkdtemp(prefix="mailwarden-journey-nsd-"))
    server = start_nsd(folder, zones())
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def test_alice_to_bob_every_check_passes(
    tmp_path: Path, tls_context: ssl.SSLContext, nsd: NSD
) -> None:
    resolver = CachingResolver(SystemResolver([f"127.0.0.1:{nsd.port}"], timeout=2.0, retries=1))
    # b.example's gateway, delivering into Bob's Maildir
    gateway_settings = Settings(
        gateway=GatewaySettings(hostname="mx.b.example"),
        dnsbl=DNSListSettings(use=()),
        greylist=GreylistSettings(enabled=False),
    )
    mailbox = tmp_path / "bob" / "Maildir"
    gateway_config = make_config(
        tmp_path / "gw", hostname="mx.b.example", local_domains=("b.example",)
    )
    checks = PipelineChecks(build(gateway_settings, resolver))
    async with running(gateway_config, checks, maildir=mailbox) as gateway:
        # a.example's MTA: Postfix relaying b.example to the gateway
        root = Path(tempfile.mkdtemp(prefix="mailwarden-journey-postfix-"))
        postfix: Postfix | None = None
        try:
            host, port = gateway.address
            postfix = start_postfix(
                root,
                extra=(
                    f"transport_maps = inline:{{ b.example=smtp:[{host}]:{port} }}\n"
                    "relay_domains = b.example\nsmtp_helo_name = mail.a.example\n"
                ),
            )
            settings = make_settings(tmp_path / "msa", smarthost=f"127.0.0.1:{postfix.port}")
            add_user(settings, "alice@a.example", "alice@a.example")
            relay = DownstreamRelay("127.0.0.1", postfix.port, helo_name="msa.a.example")
            async with running_submission(settings, tls_context, relay) as msa:
                client = await connect_starttls(msa.addresses[0])
                assert await login(client) == 235
                code, text = await send(client, "alice@a.example", ["bob@b.example"])
                assert code == 250, text
            for _ in range(200):
                if messages(mailbox):
                    break
                await asyncio.sleep(0.05)
        finally:
            if postfix is not None:
                postfix.stop()
            shutil.rmtree(root, ignore_errors=True)
    [delivered] = messages(mailbox)
    assert delivered.endswith(b"\r\n\r\nSee you at noon.\r\n")
    assert b"From: Alice <alice@a.example>" in delivered
    head = delivered.split(b"\r\n\r\n")[0].decode()
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    [field] = [
        line for line in unfolded.split("\r\n") if line.startswith("Authentication-Results:")
    ]
    results = parse_authentication_results(field.partition(":")[2])
    assert results.authserv_id == "mx.b.example"
    found = {(r.method, r.result) for r in results.results}
    assert ("iprev", "pass") in found
    assert ("spf", "pass") in found
    assert ("dmarc", "pass") in found
    dkim = [r for r in results.results if r.method == "dkim"]
    assert [r.result for r in dkim] == ["pass", "pass"]  # RSA-2048 and Ed25519
    assert {r.get("header", "a") for r in dkim} == {"rsa-sha256", "ed25519-sha256"}
